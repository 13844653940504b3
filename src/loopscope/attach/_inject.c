/* Injected into a target process (by pyinjector) to run loopscope's bootstrap safely.
 *
 * The constructor runs inside dlopen, on whichever thread the injector hijacked, at an arbitrary
 * point: it must not run Python code there. It only queues the bootstrap with Py_AddPendingCall,
 * which needs no GIL; the interpreter runs it on the main thread at its next safe point.
 *
 * `code` is a placeholder that loopscope overwrites in a private copy of this library before
 * each injection. The constructor copies it to the heap, so the library can be unloaded right
 * after it returns.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define CODE_MAX 16384

__attribute__((used)) static volatile char code[CODE_MAX] = "@@LOOPSCOPE-BOOTSTRAP@@";

typedef int (*pending_fn)(void *);
typedef int (*add_pending_fn)(pending_fn, void *);
typedef int (*is_initialized_fn)(void);

__attribute__((constructor)) static void loopscope_inject(void)
{
    add_pending_fn add = (add_pending_fn)dlsym(RTLD_DEFAULT, "Py_AddPendingCall");
    pending_fn run = (pending_fn)dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    is_initialized_fn initialized = (is_initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (add == NULL || run == NULL || initialized == NULL || !initialized())
        return;
    size_t n = 0;
    while (n < CODE_MAX - 1 && code[n] != '\0')
        n++;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        copy[i] = code[i];
    copy[n] = '\0';
    if (add(run, copy) != 0)
        free(copy);
}
