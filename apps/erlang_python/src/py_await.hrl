%% Waits for a job's reply {Tag, Result}.  A macro, not a function, so that the receive
%% sits in the same function as the make_ref() that created Tag: the compiler then skips
%% the messages that were in the mailbox before the call (the ref-receive optimisation).
%% A finite timeout is kept by the NIF (py_nif:deadline/2), which cancels the job and sends
%% {Tag, {error, timeout}} itself: exactly one of the reply and the timeout arrives, and
%% no BEAM timer is set per call.
-define(PY_AWAIT(Tag, Job, Timeout),
        begin
            case Timeout of
                infinity -> ok;
                _ -> py_nif:deadline(Job, Timeout)
            end,
            receive
                {Tag, PyAwaitResult__} -> PyAwaitResult__
            end
        end).
