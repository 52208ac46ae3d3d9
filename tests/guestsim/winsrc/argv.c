/* C:\guestsim\argv.exe: prints, as one line of JSON, the command line this program received and
 * the two ways Windows programs split it:
 *   "cmdline": GetCommandLineW(), the string CreateProcess was given;
 *   "argv":    the C runtime's argv (__wargv through wmain; mingw-w64 links msvcrt.dll, here Wine's);
 *   "shell32": CommandLineToArgvW(GetCommandLineW()) (shell32).
 * Non-ASCII characters are written as \uXXXX escapes, so the output is ASCII.  When the environment
 * variable GUESTSIM_ARGV_OUT names a file, the JSON goes there instead of stdout (so that a test
 * needs no cmd.exe redirection, which would parse the command line itself). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <shellapi.h>
#include <stdio.h>

static void put_string(const wchar_t *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned c = *s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c > 0x7e) printf("\\u%04x", c);
        else putchar((int)c);
    }
    putchar('"');
}

static void put_list(int n, wchar_t **items)
{
    int i;
    putchar('[');
    for (i = 0; i < n; i++) {
        if (i) fputs(", ", stdout);
        put_string(items[i]);
    }
    putchar(']');
}

int wmain(int argc, wchar_t **argv)
{
    int n = 0;
    wchar_t out[32768];
    wchar_t **split = CommandLineToArgvW(GetCommandLineW(), &n);
    if (GetEnvironmentVariableW(L"GUESTSIM_ARGV_OUT", out, 32768) > 0 && !_wfreopen(out, L"w", stdout))
        return 2;
    fputs("{\"cmdline\": ", stdout);
    put_string(GetCommandLineW());
    fputs(", \"argv\": ", stdout);
    put_list(argc, argv);
    fputs(", \"shell32\": ", stdout);
    put_list(split ? n : 0, split);
    fputs("}\n", stdout);
    fflush(stdout);
    return 0;
}
