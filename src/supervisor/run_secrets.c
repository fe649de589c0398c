/* run_secrets.c - the supervisor's side of a run's secrets: read them as
 * the supervisor (root) and seal them in a memfd for the helpers
 * (secrets.h says how they read it). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mab_config.h"
#include "run_secrets.h"
#include "secrets.h"
#include "xio.h"

static int append(char **buf, size_t *len, const char *name, const char *value)
{
	size_t add = strlen(name) + strlen(value) + 2;
	char *grown;

	if (strchr(value, '\n') != NULL) {
		errno = EINVAL;
		return -1;
	}
	grown = realloc(*buf, *len + add + 1);
	if (grown == NULL)
		return -1;
	*buf = grown;
	snprintf(*buf + *len, add + 1, "%s=%s\n", name, value);
	*len += add;
	return 0;
}

int secrets_snapshot(const struct mab_config *cfg, char *err, size_t errlen)
{
	char *conn = NULL, *uri = NULL, *text = NULL, *cred = NULL, *cred_escaped = NULL;
	size_t len = 0;
	int fd = -1;

	/* Token sign-in with account_url needs no connection string. */
	if (!(config_azure_uses_token(cfg) && *cfg->account_url)) {
		conn = config_connection_string(cfg, err, errlen);
		if (conn == NULL)
			goto fail;
	}
	cred = config_azure_credential(cfg, err, errlen);
	if (cred == NULL && err[0] != '\0')
		goto fail;
	if (cred != NULL && (cred_escaped = secrets_escape(cred)) == NULL) {
		snprintf(err, errlen, "Entra ID credential: out of memory");
		goto fail;
	}
	uri = config_mongo_uri(cfg, err, errlen);
	if (uri == NULL) {
		if (!*err)
			snprintf(err, errlen, "MongoDB URI: out of memory");
		goto fail;
	}
	if ((conn != NULL && append(&text, &len, SECRET_CONNECTION_STRING, conn) != 0) ||
	    (cred_escaped != NULL &&
	     append(&text, &len, SECRET_AZURE_CREDENTIAL, cred_escaped) != 0) ||
	    append(&text, &len, SECRET_MONGO_URI, uri) != 0) {
		snprintf(err, errlen, "cannot hand the secrets to the helpers: %s",
			 errno == EINVAL ? "a secret holds a line break" : strerror(errno));
		goto fail;
	}
	fd = memfd_create("mongo-azure-backup-secrets", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || fchmod(fd, 0600) != 0 || xwrite_all(fd, text, len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
		snprintf(err, errlen, "cannot keep the secrets for the helpers: %s",
			 strerror(errno));
		goto fail;
	}
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	fd = -1;
out:
	if (text != NULL)
		explicit_bzero(text, len);
	free(text);
	if (conn != NULL)
		explicit_bzero(conn, strlen(conn));
	free(conn);
	if (uri != NULL)
		explicit_bzero(uri, strlen(uri));
	free(uri);
	if (cred != NULL)
		explicit_bzero(cred, strlen(cred));
	free(cred);
	if (cred_escaped != NULL)
		explicit_bzero(cred_escaped, strlen(cred_escaped));
	free(cred_escaped);
	return fd;
}

