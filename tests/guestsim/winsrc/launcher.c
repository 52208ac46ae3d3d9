/* guestsim's stand-in for the Windows guest agent's process start (built with mingw-w64, run
 * under Wine).  Modes, chosen by the environment variable GUESTSIM_MODE:
 *
 *   run   GUESTSIM_REQUEST names a request file (UTF-16LE, fields separated by NUL):
 *           command line, working directory ("" = NULL), "1" or "0" (environment given), then
 *           the environment entries NAME=value.
 *         CreateProcessW(lpApplicationName = NULL, the command line as it is, bInheritHandles =
 *         TRUE, CREATE_UNICODE_ENVIRONMENT, the environment block, the working directory), like
 *         the agent (open-vm-tools vixTools.c VixToolsStartProgramImpl: procArgs).  Writes
 *         "<pid>" or "error <GetLastError()>" to <request>.pid, waits for the child and writes
 *         its exit code as a signed 32-bit number to <request>.exit.
 *   kill  GUESTSIM_PID: OpenProcess + TerminateProcess(exit code 1) of that one process, then wait
 *         up to 5 s for it to end.  Exit code 0, 2 (no such process) or 5 (access denied).
 *   ps    Prints "pid<TAB>parent pid<TAB>exe name<TAB>command line" per process (Toolhelp32 and
 *         NtQueryInformationProcess(ProcessCommandLineInformation)) to stdout, UTF-8.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <tlhelp32.h>
#include <winternl.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

static int write_text(const wchar_t *path, const char *text)
{
    wchar_t tmp[MAX_PATH * 2];
    HANDLE h;
    DWORD written;
    _snwprintf(tmp, sizeof(tmp) / sizeof(tmp[0]) - 1, L"%ls.tmp", path);
    tmp[sizeof(tmp) / sizeof(tmp[0]) - 1] = 0;
    h = CreateFileW(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return 0;
    WriteFile(h, text, (DWORD)strlen(text), &written, NULL);
    CloseHandle(h);
    return MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING) != 0;
}

static wchar_t *env_w(const wchar_t *name)
{
    static wchar_t buffer[4][32768];
    static int slot;
    wchar_t *out = buffer[slot++ & 3];
    DWORD n = GetEnvironmentVariableW(name, out, 32768);
    return (n == 0 || n >= 32768) ? NULL : out;
}

static int do_run(void)
{
    const wchar_t *request = env_w(L"GUESTSIM_REQUEST");
    wchar_t result[MAX_PATH * 2];
    HANDLE h;
    LARGE_INTEGER size;
    wchar_t *data, *fields[3], *p, *end, *env_block = NULL, *cwd;
    DWORD got, code = 0;
    int i;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    char text[64];
    BOOL ok;

    if (!request) return 100;
    _snwprintf(result, MAX_PATH * 2 - 1, L"%ls.pid", request);
    result[MAX_PATH * 2 - 1] = 0;
    h = CreateFileW(request, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE || !GetFileSizeEx(h, &size) || size.QuadPart > 64 * 1024 * 1024) return 101;
    data = calloc((size_t)size.QuadPart / 2 + 4, sizeof(wchar_t));
    if (!data || !ReadFile(h, data, (DWORD)size.QuadPart, &got, NULL)) return 102;
    CloseHandle(h);
    end = data + got / 2;
    p = data;
    for (i = 0; i < 3; i++) {
        if (p >= end) return 103;
        fields[i] = p;
        p += wcslen(p) + 1;
    }
    if (fields[2][0] == L'1') {
        /* The rest of the file is already NUL-separated entries; the block ends with two NULs. */
        env_block = p < end ? p : L"\0";
    }
    cwd = fields[1][0] ? fields[1] : NULL;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESHOWWINDOW;
    si.wShowWindow = SW_SHOWNORMAL;
    memset(&pi, 0, sizeof(pi));
    ok = CreateProcessW(NULL, fields[0], NULL, NULL, TRUE, CREATE_UNICODE_ENVIRONMENT, env_block, cwd, &si, &pi);
    if (!ok) {
        snprintf(text, sizeof(text), "error %lu\n", (unsigned long)GetLastError());
        write_text(result, text);
        return 0;
    }
    snprintf(text, sizeof(text), "%lu\n", (unsigned long)pi.dwProcessId);
    if (!write_text(result, text)) {
        TerminateProcess(pi.hProcess, 1);
        return 104;
    }
    CloseHandle(pi.hThread);
    WaitForSingleObject(pi.hProcess, INFINITE);
    if (!GetExitCodeProcess(pi.hProcess, &code)) code = (DWORD)-1;
    CloseHandle(pi.hProcess);
    _snwprintf(result, MAX_PATH * 2 - 1, L"%ls.exit", request);
    snprintf(text, sizeof(text), "%ld\n", (long)(LONG)code);
    write_text(result, text);
    return 0;
}

static int do_kill(void)
{
    const wchar_t *value = env_w(L"GUESTSIM_PID");
    DWORD pid;
    HANDLE h;
    if (!value) return 100;
    pid = (DWORD)wcstoul(value, NULL, 10);
    h = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    if (!h) return GetLastError() == ERROR_ACCESS_DENIED ? 5 : 2;
    if (!TerminateProcess(h, 1)) {
        DWORD err = GetLastError();
        CloseHandle(h);
        return err == ERROR_ACCESS_DENIED ? 5 : 2;
    }
    WaitForSingleObject(h, 5000);
    CloseHandle(h);
    return 0;
}

typedef NTSTATUS (WINAPI *query_fn)(HANDLE, ULONG, PVOID, ULONG, PULONG);

static void put_utf8(const wchar_t *text)
{
    char buffer[65536];
    int i, n;
    wchar_t clean[32768];
    for (i = 0; text[i] && i < 32767; i++)
        clean[i] = (text[i] == L'\t' || text[i] == L'\n' || text[i] == L'\r') ? L' ' : text[i];
    clean[i] = 0;
    n = WideCharToMultiByte(CP_UTF8, 0, clean, -1, buffer, sizeof(buffer), NULL, NULL);
    if (n > 0) fputs(buffer, stdout);
}

static int do_ps(void)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    PROCESSENTRY32W entry;
    query_fn query = (query_fn)(void *)GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "NtQueryInformationProcess");
    static BYTE info[70000];
    if (snap == INVALID_HANDLE_VALUE) return 1;
    entry.dwSize = sizeof(entry);
    if (!Process32FirstW(snap, &entry)) return 1;
    do {
        HANDLE h;
        ULONG len = 0;
        printf("%lu\t%lu\t", (unsigned long)entry.th32ProcessID, (unsigned long)entry.th32ParentProcessID);
        put_utf8(entry.szExeFile);
        fputs("\t", stdout);
        h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, entry.th32ProcessID);
        if (h && query && query(h, 60 /* ProcessCommandLineInformation */, info, sizeof(info) - 2, &len) == 0) {
            UNICODE_STRING *s = (UNICODE_STRING *)info;
            wchar_t *copy = calloc(s->Length / 2 + 1, sizeof(wchar_t));
            if (copy) {
                memcpy(copy, s->Buffer, s->Length);
                put_utf8(copy);
                free(copy);
            }
        }
        if (h) CloseHandle(h);
        fputs("\n", stdout);
    } while (Process32NextW(snap, &entry));
    CloseHandle(snap);
    fflush(stdout);
    return 0;
}

int main(void)
{
    const wchar_t *mode = env_w(L"GUESTSIM_MODE");
    if (!mode) return 100;
    if (!wcscmp(mode, L"run")) return do_run();
    if (!wcscmp(mode, L"kill")) return do_kill();
    if (!wcscmp(mode, L"ps")) return do_ps();
    return 100;
}
