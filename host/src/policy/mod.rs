//! Policy: CEL rules over people -> desired grants. (issue 5, in progress)
