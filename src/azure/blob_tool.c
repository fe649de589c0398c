/* blob_tool.c - config, log and client set-up for the blob helpers. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child_status.h"
#include "blob_tool.h"
#include "log.h"

struct report_ctx {
	char *err;
	size_t errlen;
	int count;
};

static void report_problem(void *ctx, const char *message)
{
	struct report_ctx *r = ctx;

	msg_error("%s", message);
	if (r->count++ == 0)
		snprintf(r->err, r->errlen, "%s", message);
}

int blob_tool_config(const char *ident, const char *path, bool path_given,
		     struct mab_config *cfg, char *err, size_t errlen)
{
	struct report_ctx r = { err, errlen, 0 };

	log_open(ident, LOG_TARGET_STDERR, LOG_INFO);
	if (!path_given && access(path, F_OK) != 0 && errno == ENOENT) {
		config_defaults(cfg);
	} else if (config_load(path, cfg, report_problem, &r) != 0) {
		return -1;
	}
	/* "auto" means stderr here: the supervisor decides where a child's
	 * stderr goes. */
	log_open(ident, cfg->log_target == LOG_TARGET_SYSLOG ? LOG_TARGET_SYSLOG
							     : LOG_TARGET_STDERR,
		 cfg->log_level);
	return 0;
}

struct azure_client *azure_client_from_config(const struct mab_config *cfg,
					      const char *container, char *err, size_t errlen)
{
	struct azure_client_settings s = {
		.container = container ? container : cfg->container,
		.ca_file = cfg->ca_file,
		.require = cfg->azure_auth == AZURE_AUTH_SHARED_KEY ? 1 :
			   cfg->azure_auth == AZURE_AUTH_SAS ? 2 : 0,
	};
	struct azure_token_settings ts = {
		.client_id = cfg->client_id, .tenant_id = cfg->tenant_id,
		.authority_host = cfg->authority_host,
		.identity_endpoint = cfg->identity_endpoint,
		.federated_token_file = cfg->federated_token_file,
		.ca_file = cfg->ca_file, .max_retries = cfg->max_retries,
	};
	struct azure_client *client = NULL;
	char *cs = NULL, *cred = NULL;

	err[0] = '\0';
	if (config_azure_uses_token(cfg)) {
		switch (cfg->azure_auth) {
		case AZURE_AUTH_SERVICE_PRINCIPAL:
			ts.kind = *cfg->client_certificate_file ? AZURE_TOKEN_CLIENT_CERTIFICATE
								 : AZURE_TOKEN_CLIENT_SECRET;
			cred = config_azure_credential(cfg, err, errlen);
			if (cred == NULL)
				goto out;
			ts.credential = cred;
			break;
		case AZURE_AUTH_WORKLOAD_IDENTITY:
			ts.kind = AZURE_TOKEN_FEDERATED;
			break;
		default:
			ts.kind = AZURE_TOKEN_MANAGED_IDENTITY;
			break;
		}
		s.account_url = cfg->account_url;
		s.token = &ts;
	} else {
		cs = config_connection_string(cfg, err, errlen);
		if (cs == NULL)
			goto out;
		s.connection_string = cs;
	}
	client = azure_client_new_with(&s, err, errlen);
	if (client != NULL)
		azure_client_set_max_retries(client, cfg->max_retries);
out:
	if (cs != NULL)
		explicit_bzero(cs, strlen(cs));
	free(cs);
	if (cred != NULL)
		explicit_bzero(cred, strlen(cred));
	free(cred);
	return client;
}

struct azure_client *blob_tool_client(const struct mab_config *cfg, const char *container,
				      char *err, size_t errlen)
{
	struct azure_client *client = azure_client_from_config(cfg, container, err, errlen);

	if (client == NULL)
		msg_error("%s", err);
	return client;
}

int blob_tool_parse_u64(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (text == NULL || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

void blob_tool_send_error(int status_fd, const char *cls, long status, const char *code,
			  const char *message)
{
	char extra[160] = "";

	if (status_fd < 0)
		return;
	if (status > 0)
		snprintf(extra, sizeof(extra), " status=%ld", status);
	/* A code with a space or '=' would break the record's fields. */
	if (code != NULL && *code != '\0' && strcspn(code, " =") == strlen(code)) {
		size_t used = strlen(extra);
		snprintf(extra + used, sizeof(extra) - used, " code=%.100s", code);
	}
	if (status_send(status_fd, "result error class=%s%s message=%s", cls, extra,
			message) != 0 && errno != EPIPE)
		msg_warn("status channel: %s", strerror(errno));
}

int blob_tool_fail(int status_fd, const struct azure_error *err)
{
	msg_error("%s", err->message);
	blob_tool_send_error(status_fd, err->err_class ? err->err_class : ERR_CLASS_LOCAL,
			     err->status, err->code, err->message);
	return CHILD_EXIT_FAILED;
}
