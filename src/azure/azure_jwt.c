/* azure_jwt.c - RS256 client assertions with OpenSSL (see azure_jwt.h). */
#include "config.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azure_jwt.h"

#define ASSERTION_LIFETIME 600

struct azure_jwt_signer {
	EVP_PKEY *key;
	char x5t[64];              /* base64url SHA-1 of the certificate's DER */
};

/* base64url without padding (RFC 7515, 2). */
static char *b64url(const unsigned char *data, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);
	int n;

	if (out == NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return out;
}

struct azure_jwt_signer *azure_jwt_signer_new(const char *pem, char *err, size_t errlen)
{
	struct azure_jwt_signer *s = calloc(1, sizeof(*s));
	BIO *bio = NULL;
	X509 *cert = NULL;
	unsigned char *der = NULL;
	unsigned char sha1[20];
	unsigned int sha1_len = 0;
	int der_len;

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL || (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "client_certificate_file holds no PEM certificate "
			 "(-----BEGIN CERTIFICATE-----)");
		goto fail;
	}
	BIO_free(bio);
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL ||
	    (s->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"")) == NULL) {
		snprintf(err, errlen, "client_certificate_file holds no unencrypted private "
			 "key (-----BEGIN PRIVATE KEY----- or RSA PRIVATE KEY) next to the "
			 "certificate");
		goto fail;
	}
	if (EVP_PKEY_base_id(s->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "client_certificate_file: the private key is not RSA "
			 "(Entra ID's certificate credentials sign with RS256)");
		goto fail;
	}
	if (X509_check_private_key(cert, s->key) != 1) {
		snprintf(err, errlen, "client_certificate_file: the private key does not "
			 "belong to the certificate");
		goto fail;
	}
	der_len = i2d_X509(cert, &der);
	if (der_len <= 0 || EVP_Digest(der, (size_t)der_len, sha1, &sha1_len, EVP_sha1(),
				       NULL) != 1) {
		snprintf(err, errlen, "client_certificate_file: cannot hash the certificate");
		goto fail;
	}
	char *thumb = b64url(sha1, sha1_len);
	if (thumb == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(s->x5t, sizeof(s->x5t), "%s", thumb);
	free(thumb);
	OPENSSL_free(der);
	X509_free(cert);
	BIO_free(bio);
	return s;
fail:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(cert);
	BIO_free(bio);
	azure_jwt_signer_free(s);
	return NULL;
}

void azure_jwt_signer_free(struct azure_jwt_signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	free(s);
}

/* Only ids and URLs go into the claims; none needs escaping, and one that
 * would is refused rather than escaped. */
static bool json_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

char *azure_jwt_assertion(struct azure_jwt_signer *s, const char *client_id,
			  const char *audience, char *why, size_t whylen)
{
	char header[160], claims[1024], jti_hex[33];
	unsigned char jti[16];
	char *h64 = NULL, *c64 = NULL, *signing = NULL, *sig64 = NULL, *out = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	EVP_MD_CTX *md = NULL;
	time_t now = time(NULL);

	if (!json_safe(client_id) || !json_safe(audience)) {
		snprintf(why, whylen, "client_id or the token endpoint holds a character "
			 "a JWT claim cannot");
		return NULL;
	}
	if (RAND_bytes(jti, sizeof(jti)) != 1) {
		snprintf(why, whylen, "no random bytes for the assertion's jti");
		return NULL;
	}
	for (size_t i = 0; i < sizeof(jti); i++)
		snprintf(jti_hex + 2 * i, 3, "%02x", jti[i]);
	snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"%s\"}",
		 s->x5t);
	snprintf(claims, sizeof(claims),
		 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"jti\":\"%s\","
		 "\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}", audience, client_id, client_id,
		 jti_hex, (long long)now, (long long)now, (long long)now + ASSERTION_LIFETIME);
	h64 = b64url((const unsigned char *)header, strlen(header));
	c64 = b64url((const unsigned char *)claims, strlen(claims));
	if (h64 == NULL || c64 == NULL || asprintf(&signing, "%s.%s", h64, c64) < 0) {
		signing = NULL;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->key) != 1 ||
	    EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)signing,
			   strlen(signing)) != 1 ||
	    (sig = malloc(sig_len)) == NULL ||
	    EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)signing,
			   strlen(signing)) != 1) {
		snprintf(why, whylen, "cannot sign the client assertion");
		ERR_clear_error();
		goto out;
	}
	sig64 = b64url(sig, sig_len);
	if (sig64 == NULL || asprintf(&out, "%s.%s", signing, sig64) < 0) {
		out = NULL;
		snprintf(why, whylen, "out of memory");
	}
out:
	EVP_MD_CTX_free(md);
	free(h64);
	free(c64);
	free(signing);
	free(sig);
	free(sig64);
	return out;
}
