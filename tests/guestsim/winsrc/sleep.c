/* C:\guestsim\sleep.exe MILLISECONDS [EXITCODE]: sleeps, then exits with EXITCODE (a signed
 * or unsigned 32-bit number, default 0).  A long-running Windows program for process tests. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdlib.h>

int wmain(int argc, wchar_t **argv)
{
    DWORD ms = argc > 1 ? (DWORD)wcstoul(argv[1], NULL, 10) : 1000;
    long long code = argc > 2 ? wcstoll(argv[2], NULL, 10) : 0;
    Sleep(ms);
    ExitProcess((UINT)code);
    return 0;
}
