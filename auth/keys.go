package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// keyFamily is the kind of key an algorithm verifies with.
type keyFamily int

const (
	familyHMAC keyFamily = iota + 1
	familyRSA
	familyEC
	familyEd25519
)

// algInfo describes one supported JWS algorithm.
type algInfo struct {
	family     keyFamily
	curve      elliptic.Curve // ES* only
	hmacMinLen int            // HS* only: the hash size, the RFC 7518 minimum key length
}

// minRSABits is the smallest RSA modulus accepted, from PEM and JWKS alike.
// 1024-bit keys are factorable with enough resources and Go refuses them at
// verification time anyway; failing at start-up is clearer.
const minRSABits = 2048

// algorithms lists every algorithm a Verifier can be configured with.
var algorithms = map[string]algInfo{
	"HS256": {family: familyHMAC, hmacMinLen: 32},
	"HS384": {family: familyHMAC, hmacMinLen: 48},
	"HS512": {family: familyHMAC, hmacMinLen: 64},
	"RS256": {family: familyRSA},
	"RS384": {family: familyRSA},
	"RS512": {family: familyRSA},
	"PS256": {family: familyRSA},
	"PS384": {family: familyRSA},
	"PS512": {family: familyRSA},
	"ES256": {family: familyEC, curve: elliptic.P256()},
	"ES384": {family: familyEC, curve: elliptic.P384()},
	"ES512": {family: familyEC, curve: elliptic.P521()},
	"EdDSA": {family: familyEd25519},
}

// lookupAlg resolves a configured algorithm name ("" means HS256).
func lookupAlg(alg string) (string, algInfo, error) {
	if alg == "" {
		alg = "HS256"
	}
	if strings.EqualFold(alg, "none") {
		return "", algInfo{}, errors.New(`alg "none" is never allowed: tokens must be signed`)
	}
	info, ok := algorithms[alg]
	if !ok {
		return "", algInfo{}, fmt.Errorf("unknown alg %q (supported: %s)", alg, strings.Join(supportedAlgs(), " "))
	}
	if jwt.GetSigningMethod(alg) == nil {
		// Cannot happen with jwt/v5, which registers all of the above; kept so
		// a future library change fails loudly at start-up, not per request.
		return "", algInfo{}, fmt.Errorf("alg %q is not available in the JWT library", alg)
	}
	return alg, info, nil
}

func supportedAlgs() []string {
	names := make([]string, 0, len(algorithms))
	for name := range algorithms {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// parseStaticKey turns Config.Key into the verification key for alg.
func parseStaticKey(alg string, info algInfo, key string) (any, error) {
	if key == "" {
		return nil, fmt.Errorf("no key configured for %s", alg)
	}
	if info.family == familyHMAC {
		// A PEM key with an HS* algorithm is almost certainly a forgotten alg
		// setting; honouring it would let anyone holding the public key sign
		// tokens, so refuse.
		if strings.Contains(key, "-----BEGIN") {
			return nil, fmt.Errorf("key looks like a PEM key but alg is %s: set alg to the key's algorithm (RS256, ES256, EdDSA, ...)", alg)
		}
		return []byte(key), nil
	}

	block, _ := pem.Decode([]byte(key))
	if block == nil {
		return nil, fmt.Errorf("key for %s is not PEM-encoded", alg)
	}
	if strings.Contains(block.Type, "PRIVATE") {
		return nil, fmt.Errorf("key for %s is a %s: configure the public key instead", alg, block.Type)
	}

	var pub any
	var err error
	switch info.family {
	case familyRSA:
		pub, err = jwt.ParseRSAPublicKeyFromPEM([]byte(key))
	case familyEC:
		pub, err = jwt.ParseECPublicKeyFromPEM([]byte(key))
	case familyEd25519:
		pub, err = jwt.ParseEdPublicKeyFromPEM([]byte(key))
	}
	if err != nil {
		return nil, fmt.Errorf("key for %s does not parse as its public key type: %w", alg, err)
	}
	if err := checkKeyFits(alg, info, pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// checkKeyFits reports whether pub is a usable public key for alg: right
// type, right curve, strong enough.
func checkKeyFits(alg string, info algInfo, pub any) error {
	switch info.family {
	case familyRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA public key, got %T", alg, pub)
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("RSA key for %s has %d bits; at least %d are required", alg, bits, minRSABits)
		}
	case familyEC:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an EC public key, got %T", alg, pub)
		}
		if k.Curve == nil || k.Curve.Params().Name != info.curve.Params().Name {
			return fmt.Errorf("%s needs a key on curve %s, got %s", alg, info.curve.Params().Name, k.Curve.Params().Name)
		}
	case familyEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an Ed25519 public key, got %T", alg, pub)
		}
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key for %s has %d bytes, want %d", alg, len(k), ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("%s keys cannot come from a public key", alg)
	}
	return nil
}
