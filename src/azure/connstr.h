/* connstr.h - Azure Storage connection strings.
 *
 * Turns "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k", the
 * BlobEndpoint= / SharedAccessSignature= forms and UseDevelopmentStorage=true
 * into an endpoint and a credential.  Error messages name the offending key
 * but never repeat a secret value (AccountKey, SharedAccessSignature).
 */
#ifndef MAB_CONNSTR_H
#define MAB_CONNSTR_H

#include <stdbool.h>
#include <stddef.h>

struct azure_conn {
	/* scheme://host[:port][/path-prefix], no trailing '/'.  The prefix is
	 * there for path-style (emulator) endpoints: .../devstoreaccount1. */
	char *endpoint;
	char *account;          /* may be NULL with a SAS and a BlobEndpoint */
	unsigned char *key;     /* decoded AccountKey, NULL with a SAS */
	size_t key_len;
	char *sas;              /* SAS token without '?', NULL with a key */
	bool http;              /* endpoint is plain http: the string said so */
};

/* 0 on success; -1 with a message in err (never containing a secret). */
int connstr_parse(const char *text, struct azure_conn *out, char *err, size_t errlen);
/* The endpoint of token sign-in: [azure] account_url, https only; no
 * credential.  0, or -1 with a message in err. */
int connstr_from_account_url(const char *url, struct azure_conn *out, char *err,
			     size_t errlen);
/* Wipes the secrets and frees everything; safe on a zeroed struct. */
void connstr_free(struct azure_conn *conn);

/* The Azurite development account (azure-blob.md). */
#define AZURITE_ACCOUNT "devstoreaccount1"
#define AZURITE_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AZURITE_BLOB_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"

#endif
