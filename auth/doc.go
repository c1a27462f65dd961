// Package auth decides whether a request's JSON Web Token may be trusted
// and what it grants. It owns everything between the raw request and the
// Mercure claims the hub authorises against:
//
//   - finding the token in a request (FromRequest: the Authorization
//     header, then the authorization query parameter, then the draft-08
//     access token cookie, then the 0.x cookie);
//   - verifying it (Verifier: one configured algorithm, pinned; signature;
//     exp and nbf; a bounded length) with a static key or a JWK Set that is
//     cached and refreshed;
//   - reading its mercure claim into Claims (publish and subscribe
//     selectors, payload, subject, expiry);
//   - for draft-08 access tokens (IsAccessToken: typ at+jwt), verifying them
//     as RFC 9068 asks (Issuers.Verify: the keys of the issuer named by iss
//     only, exp required, aud naming the hub) and reading their
//     authorization_details into the same Claims, with typed selectors;
//   - the CSRF check for publishes authorised by a cookie (CheckOrigin).
//
// It does not decide which topics a selector matches nor write HTTP
// responses: the topic and server packages do.
//
// Start with NewVerifier, once per kind of token (publisher, subscriber),
// at start-up so that configuration mistakes stop the hub there:
//
//	v, err := auth.NewVerifier(ctx, auth.Config{Alg: "RS256", Key: pemKey})
//	...
//	defer v.Close()
//	token, src, err := auth.FromRequest(r, "")    // err wraps ErrInvalidToken: 401
//	claims, err := v.Verify(token)                // err.Error() is a short 401 reason
//	if src == auth.SourceCookie && publishing {
//		err = auth.CheckOrigin(r, allowedOrigins) // err wraps ErrOriginNotAllowed: 403
//	}
//
// Security choices, on purpose: the token's alg must equal the configured
// one exactly, so "none" and algorithm confusion (an HMAC token keyed with a
// public key) never verify; a PEM key is refused with an HS* alg; header
// fields that point at keys (jku, x5u, jwk) are ignored, keys come only from
// the configuration; tokens with a crit header are refused; exp and nbf have
// no leeway.
package auth
