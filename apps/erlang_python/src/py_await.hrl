%% Waits for a job's reply {Tag, Result}.  A macro, not a function, so that the receive
%% sits in the same function as the make_ref() that created Tag: the compiler then skips
%% the messages that were in the mailbox before the call (the ref-receive optimisation).
%% On timeout the job is cancelled; if its reply was already on its way it is received, so
%% no late reply is ever left in the mailbox.
-define(PY_AWAIT(Tag, Job, Timeout),
        receive
            {Tag, PyAwaitResult__} -> PyAwaitResult__
        after Timeout ->
            case py_nif:cancel(Job) of
                cancelled -> {error, timeout};
                sent -> receive {Tag, PyAwaitLate__} -> PyAwaitLate__ end
            end
        end).
