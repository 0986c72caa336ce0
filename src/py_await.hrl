%% Waits for a job's reply {Tag, Result}.  A macro, not a function, so that the receive
%% sits in the same function as the make_ref() that created Tag: the compiler then skips
%% the messages that were in the mailbox before the call (the ref-receive optimisation).
%% A finite timeout was given to the NIF with the job, which cancels the job and sends
%% {Tag, {error, timeout}} itself: exactly one of the reply and the timeout arrives, and
%% no BEAM timer is set per call.
-define(PY_AWAIT(Tag),
        receive
            {Tag, PyAwaitResult__} -> PyAwaitResult__
        end).
