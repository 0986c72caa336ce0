/* The timer signals an app can arm from Python (signal.alarm, signal.setitimer) or a C
 * extension with alarm()/setitimer(): SIGALRM, SIGVTALRM and SIGPROF end the process
 * by default, and the BEAM leaves them at their default.  signals_guard gives each one
 * still at SIG_DFL a handler that does nothing, so that an armed timer cannot end the
 * VM.  A handler, not SIG_IGN: handlers are reset on exec, so programs the VM starts
 * (ports, os:cmd) get the default disposition back; an ignored signal would be
 * inherited.  Signals sent to the VM's own process from Python (os.kill,
 * signal.raise_signal) are refused in Python (erlang_python_runtime.guard_process). */
#ifndef PY_NIF_SIGNALS_H
#define PY_NIF_SIGNALS_H

/* Any thread, once per VM (before the interpreter starts).  A disposition set
 * otherwise (os:set_signal/2, a handler of the VM's) is left alone. */
void signals_guard(void);

#endif
