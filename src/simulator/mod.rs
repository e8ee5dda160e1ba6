//! The embedded OnlyTraffic partner API simulator (placeholder, filled in by issue 3).
