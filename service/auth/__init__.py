"""Bearer tokens: issued to users, stored hashed, resolved to a principal per request, revoked."""
