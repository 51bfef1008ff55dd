//! The worker: reconciles one object per task against Microsoft Graph under a per-object lock.
