//! Directory file and HR events: who the people are, as of a time. (issue 5, in progress)
