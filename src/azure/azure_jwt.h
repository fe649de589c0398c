/* azure_jwt.h - the client assertion of a certificate credential: a JWT
 * signed RS256 with the application's private key, which Entra ID checks
 * against the certificate uploaded to the app registration (named by its
 * SHA-1 thumbprint, x5t).
 */
#ifndef MAB_AZURE_JWT_H
#define MAB_AZURE_JWT_H

#include <stddef.h>

struct azure_jwt_signer;

/* pem holds the certificate and its RSA private key (unencrypted), in any
 * order.  NULL with a message in err that names what is missing. */
struct azure_jwt_signer *azure_jwt_signer_new(const char *pem, char *err, size_t errlen);
/* A fresh assertion for client_id at audience (the token endpoint URL),
 * valid 10 minutes, with a random jti.  malloc'd, or NULL with why. */
char *azure_jwt_assertion(struct azure_jwt_signer *s, const char *client_id,
			  const char *audience, char *why, size_t whylen);
void azure_jwt_signer_free(struct azure_jwt_signer *s);

#endif
