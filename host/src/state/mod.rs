//! State store. (issue 5, in progress)
