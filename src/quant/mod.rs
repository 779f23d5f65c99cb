//! Vector codecs for compressed storage: f16 and SQ8 scalar quantisation.
