int tr_traces_placeholder_;
