//! Microsoft Graph client: auth, paging, batching, throttling signals and typed outcomes.
