#include "core/signals.h"

#include <signal.h>
#include <stddef.h>

static void
ignore_timer_signal(int sig)
{
    (void)sig;
}

void
signals_guard(void)
{
    static const int timers[] = {SIGALRM, SIGVTALRM, SIGPROF};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        struct sigaction old;
        if (sigaction(timers[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO) != 0) {
            continue;
        }
        struct sigaction act = {.sa_handler = ignore_timer_signal, .sa_flags = SA_RESTART};
        sigemptyset(&act.sa_mask);
        sigaction(timers[i], &act, NULL);
    }
}
