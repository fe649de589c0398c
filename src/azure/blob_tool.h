/* blob_tool.h - start-up shared by upload-blob and download-blob.
 *
 * Loads the configuration (or the built-in defaults when the default file
 * does not exist and no -c was given, so the tools work from the
 * environment alone), opens the log, and builds the Azure client from the
 * connection string or the token settings; no secret passes through argv.
 */
#ifndef MAB_BLOB_TOOL_H
#define MAB_BLOB_TOOL_H

#include "azure_blob.h"
#include "mab_config.h"

/* 0, or -1 after logging why (the caller exits CHILD_EXIT_USAGE); err gets
 * the same one-line reason for a status record. */
int blob_tool_config(const char *ident, const char *path, bool path_given,
		     struct mab_config *cfg, char *err, size_t errlen);
/* The client the configuration describes, for container (or
 * cfg->container when NULL): the connection string's key or SAS, or a
 * token source for [azure] auth; NULL with the reason in err. */
struct azure_client *azure_client_from_config(const struct mab_config *cfg,
					      const char *container, char *err, size_t errlen);
/* The same, logging why it failed. */
struct azure_client *blob_tool_client(const struct mab_config *cfg, const char *container,
				      char *err, size_t errlen);
/* Sends "result error class=C [status=N] [code=X] message=..." on the
 * status channel (nothing when status_fd < 0). */
void blob_tool_send_error(int status_fd, const char *cls, long status, const char *code,
			  const char *message);
/* Logs an Azure error and reports it; returns CHILD_EXIT_FAILED. */
int blob_tool_fail(int status_fd, const struct azure_error *err);
/* Parses a decimal uint64; -1 when it is not one. */
int blob_tool_parse_u64(const char *text, uint64_t *out);

#endif
