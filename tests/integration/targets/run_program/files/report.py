import sys

print("python says " + " ".join(sys.argv[1:]))
with open("report.txt", "w") as report:
    report.write("report of the python script\n")
