"""Stage runners: load a work item's inputs, call one science function, store the result."""
