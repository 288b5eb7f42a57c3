//! cldc
