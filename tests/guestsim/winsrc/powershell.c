/* C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe in the simulator's Windows VMs.
 * Wine has no PowerShell (its powershell.exe is a stub that ignores the script and exits 0), so the
 * simulator puts this stand-in there. It runs nothing: it prints, as one line of JSON on stdout, the
 * argv it received (the C runtime's split) and the script it was given, decoded from -EncodedCommand
 * (base64 of UTF-16LE) or read from the -File (UTF-8, with or without a byte order mark), says on
 * stderr that no PowerShell ran, and exits with 1. Tests use it to check what reaches PowerShell
 * through cmd.exe and CreateProcess; what PowerShell would do with it is not simulated. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static void put_wide(const wchar_t *s, size_t n)
{
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c > 0x7e) printf("\\u%04x", c);
        else putchar((int)c);
    }
    putchar('"');
}

static int b64_value(wchar_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 into bytes; returns the byte count, or -1 on a character outside the alphabet. */
static long b64_decode(const wchar_t *in, unsigned char *out)
{
    long n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64_value(*in);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    return n;
}

static int script_from_file(const wchar_t *path)
{
    FILE *f = _wfopen(path, L"rb");
    unsigned char *data;
    wchar_t *text;
    long size;
    int skip = 0, chars;
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) { fclose(f); return 0; }
    fclose(f);
    if (size >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf) skip = 3;
    chars = MultiByteToWideChar(CP_UTF8, 0, (char *)data + skip, (int)(size - skip), NULL, 0);
    text = malloc(((size_t)chars + 1) * sizeof(wchar_t));
    if (!text) return 0;
    MultiByteToWideChar(CP_UTF8, 0, (char *)data + skip, (int)(size - skip), text, chars);
    fputs(", \"script\": ", stdout);
    put_wide(text, (size_t)chars);
    fprintf(stdout, ", \"bom\": %s", skip ? "true" : "false");
    return 1;
}

int wmain(int argc, wchar_t **argv)
{
    int i, found = 0;
    fputs("{\"argv\": [", stdout);
    for (i = 0; i < argc; i++) {
        if (i) fputs(", ", stdout);
        put_wide(argv[i], wcslen(argv[i]));
    }
    putchar(']');
    for (i = 1; i + 1 < argc && !found; i++) {
        if (_wcsicmp(argv[i], L"-EncodedCommand") == 0) {
            unsigned char *bytes = malloc(wcslen(argv[i + 1]) + 4);
            long n = bytes ? b64_decode(argv[i + 1], bytes) : -1;
            if (n < 0 || n % 2) {
                fputs(", \"error\": \"-EncodedCommand is not base64 of UTF-16LE\"", stdout);
            } else {
                fputs(", \"script\": ", stdout);
                put_wide((const wchar_t *)bytes, (size_t)n / 2);
            }
            found = 1;
        } else if (_wcsicmp(argv[i], L"-File") == 0) {
            if (!script_from_file(argv[i + 1])) fputs(", \"error\": \"cannot read the -File script\"", stdout);
            found = 1;
        }
    }
    fputs("}\n", stdout);
    fflush(stdout);
    fputs("guestsim: this VM has no PowerShell (Wine has none); the script was not run.\n", stderr);
    return 1;
}
