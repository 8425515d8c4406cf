"""Provider adapters: translate, call, classify. No retries, no policy, no quotas."""
