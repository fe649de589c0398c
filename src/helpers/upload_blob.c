/* upload_blob.c - the upload-blob helper: stdin to one block blob.
 *
 *   upload-blob [-c CONF] [--status-fd N] [--content-type TYPE]
 *               [--meta name=value]... [--container NAME] BLOB-NAME
 *
 * Alone, it commits at EOF (gzip < x | upload-blob backups/x.gz).  Under
 * the supervisor (--status-fd), it reports progress, says "staged" at EOF
 * and commits only when told "commit": a failed export never becomes a
 * blob.  The connection string comes from the config file or the
 * environment, never from argv.  Exit codes: enum child_exit.
 *
 * Two modes serve `mongo-azure-backupd -t` and `--check-connect` (the
 * supervisor links no Azure code): --check-config parses the connection
 * string as every upload will (problems as FILE:LINE: on stderr, exit 2),
 * and --probe writes and deletes a small blob at the container's root,
 * one "ok   ..." or "FAIL ..." line per step on stdout (exit 0 all passed,
 * 1 otherwise).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob_tool.h"
#include "block_upload.h"
#include "child_status.h"
#include "log.h"
#include "no_core.h"

#define MAX_USER_META 16

struct upload {
	int status_fd;                /* -1 standalone */
	const char *blob;
	const char *content_type;
	bool create_only;
	struct azure_meta meta[MAX_USER_META + 3];
	size_t n_meta;
	char *meta_buf[MAX_USER_META];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: upload-blob [-c CONF] [--status-fd N] [--content-type TYPE]\n"
		"                   [--meta name=value]... [--container NAME] [--create-only]\n"
		"                   BLOB-NAME\n"
		"Streams stdin into the block blob BLOB-NAME and commits it at EOF (or, with\n"
		"--status-fd, when the supervisor says commit).  The connection string is read\n"
		"from the config file or AZURE_STORAGE_CONNECTION_STRING.\n"
		"  --create-only  commit only if no blob of that name exists (exit 1, error\n"
		"                 class 'exists', when one does)\n"
		"       upload-blob [-c CONF] [--container NAME] --check-config | --probe\n"
		"  --check-config only parse the connection string (FILE:LINE: problems, exit 2)\n"
		"  --probe        write and delete a probe blob at the container's root\n"
		"                 (creating the container when [azure] create_container = yes),\n"
		"                 one ok/FAIL line per step (exit 0 all ok, 1 any failed)\n");
}

/* ---- checks: mongo-azure-backupd -t and --check-connect ---------------- */

static void print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s\n", message);
}

/* The line that set the connection string (0: from the environment). */
static int connstr_line(const struct mab_config *cfg)
{
	int line = config_key_line(cfg, "azure", "connection_string_file");

	return line > 0 ? line : config_key_line(cfg, "azure", "connection_string");
}

/* The client every upload would build: NULL after printing FILE:LINE: why
 * (connstr.c's messages never hold the secret). */
static struct azure_client *check_client(const struct mab_config *cfg, const char *container)
{
	struct azure_client *client;
	char err[512];
	bool token = config_azure_uses_token(cfg);

	client = azure_client_from_config(cfg, container, err, sizeof(err));
	if (client == NULL) {
		bool from_env = !token && !*cfg->connection_string &&
				!*cfg->connection_string_file;
		int line = token ? config_key_line(cfg, "azure", "auth") : connstr_line(cfg);
		fprintf(stderr, "%s:%d: %s%s\n", cfg->path, line,
			from_env ? "(AZURE_STORAGE_CONNECTION_STRING) " : "", err);
	}
	return client;
}

static void probe_line(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void probe_line(bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs(ok ? "ok   azure: " : "FAIL azure: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* --probe: what a run's first upload does (create the container when
 * configured), then a blob written and deleted at the container's root,
 * outside any backup set, so listing, verification and retention never
 * see it.  Returns enum child_exit. */
static int probe(const struct mab_config *cfg, const char *container)
{
	struct azure_client *client = check_client(cfg, container);
	struct azure_error err;
	char name[64], body[128];
	int rc = CHILD_EXIT_FAILED;

	if (client == NULL)
		return CHILD_EXIT_USAGE;
	/* A check reports what it sees; it does not sit out an outage. */
	azure_client_set_max_retries(client, cfg->max_retries < 1 ? cfg->max_retries : 1);
	const char *where = azure_client_endpoint(client);
	if (cfg->create_container) {
		bool created;
		if (azure_container_create(client, &created, &err) != 0) {
			probe_line(false, "container '%s' at %s: %s", client->container, where,
				   err.message);
			goto out;
		}
		probe_line(true, "container '%s' at %s: %s", client->container, where,
			   created ? "created (create_container = yes)" : "exists");
	}
	uint64_t rng = azure_rng_seed();
	snprintf(name, sizeof(name), ".mongo-azure-backup-probe-%016" PRIx64,
		 azure_rng_next(&rng));
	int len = snprintf(body, sizeof(body), "written by mongo-azure-backupd "
			   "--check-connect; safe to delete\n");
	struct azure_put_opts po = { .content_type = "text/plain" };
	if (azure_put_blob(client, name, body, (size_t)len, &po, &err) != 0) {
		probe_line(false, "container '%s' at %s: writing %s: %s", client->container,
			   where, name, err.message);
		goto out;
	}
	probe_line(true, "container '%s' at %s: probe blob %s written", client->container,
		   where, name);
	switch (azure_delete_blob(client, name, &err)) {
	case AZURE_DELETED:
	case AZURE_DELETE_NOT_FOUND:
		probe_line(true, "container '%s': probe blob %s deleted", client->container, name);
		rc = CHILD_EXIT_OK;
		break;
	default:
		/* Retention deletes old sets with the same credentials. */
		probe_line(false, "container '%s': deleting %s: %s (retention needs to delete "
			   "too; remove the probe blob by hand)", client->container, name,
			   err.message);
		break;
	}
out:
	azure_client_free(client);
	return rc;
}

/* --check-config and --probe; exit codes as enum child_exit. */
static int run_check(const char *config_path, bool config_given, const char *container,
		     bool connect)
{
	struct mab_config cfg;
	int rc = CHILD_EXIT_USAGE;

	if (!config_given && access(config_path, F_OK) != 0 && errno == ENOENT) {
		config_defaults(&cfg);
	} else if (config_load(config_path, &cfg, print_problem, NULL) != 0) {
		config_free(&cfg);
		return CHILD_EXIT_USAGE;
	}
	/* Retries and failures are the check's own lines, not warnings. */
	log_set_level(LOG_ERR);
	if (connect) {
		rc = probe(&cfg, container);
	} else {
		struct azure_client *client = check_client(&cfg, container);
		rc = client != NULL ? CHILD_EXIT_OK : CHILD_EXIT_USAGE;
		azure_client_free(client);
	}
	config_free(&cfg);
	return rc;
}


static int aborted(const struct upload *u, const char *why)
{
	msg_notice("%s: %s; nothing committed", u->blob, why);
	blob_tool_send_error(u->status_fd, ERR_CLASS_ABORTED, 0, NULL, why);
	return CHILD_EXIT_PEER_GONE;
}

static void on_progress(void *ctx, const struct block_upload_stats *st)
{
	const struct upload *u = ctx;

	if (status_send(u->status_fd, "progress bytes=%" PRIu64 " blocks=%" PRIu64
			" read=%" PRIu64, st->bytes_staged, st->blocks_staged,
			st->bytes_read) != 0 && errno != EPIPE)
		msg_warn("status channel: %s", strerror(errno));
}

/* While staging the supervisor may only say "abort" or go away. */
static int on_watch(void *ctx)
{
	const struct upload *u = ctx;
	struct status_record rec;
	char buf[STATUS_MSG_MAX];
	ssize_t n = status_recv(u->status_fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		msg_notice("status channel closed while uploading");
		return 1;
	}
	if (status_parse(buf, (size_t)n, &rec) == 0 && strcmp(rec.kind, "abort") == 0)
		return 1;
	msg_warn("status channel: unexpected '%.*s' while uploading; ignored",
		 (int)(n > 40 ? 40 : n), buf);
	return 0;
}

static int add_user_meta(struct upload *u, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *copy;

	if (u->n_meta == MAX_USER_META) {
		msg_error("at most %d --meta options", MAX_USER_META);
		return -1;
	}
	if (eq == NULL) {
		msg_error("--meta '%s': expected name=value", arg);
		return -1;
	}
	copy = strdup(arg);
	if (copy == NULL) {
		msg_error("out of memory");
		return -1;
	}
	u->meta_buf[u->n_meta] = copy;
	copy[eq - arg] = '\0';
	const char *name = copy, *value = copy + (eq - arg) + 1;
	if (!azure_valid_meta_name(name)) {
		msg_error("--meta '%s': names are a lowercase letter then lowercase letters "
			  "or digits", name);
		return -1;
	}
	if (strcmp(name, "sha256") == 0 || strcmp(name, "documents") == 0 ||
	    strcmp(name, "bsonbytes") == 0) {
		msg_error("--meta %s: that name is set by upload-blob itself", name);
		return -1;
	}
	for (size_t i = 0; i < u->n_meta; i++) {
		if (strcmp(u->meta[i].name, name) == 0) {
			msg_error("--meta %s given twice", name);
			return -1;
		}
	}
	if (!azure_valid_meta_value(value)) {
		msg_error("--meta %s: values are printable ASCII without leading, trailing "
			  "or double spaces", name);
		return -1;
	}
	u->meta[u->n_meta].name = name;
	u->meta[u->n_meta].value = value;
	u->n_meta++;
	return 0;
}

enum verdict { VERDICT_COMMIT, VERDICT_ABORT, VERDICT_GONE };

/* Waits for the supervisor's verdict after "staged"; for a commit, the
 * counts go to documents/bson_bytes. */
static enum verdict wait_verdict(const struct upload *u, char *documents,
				 char *bson_bytes, size_t size)
{
	for (;;) {
		struct status_record rec;
		char buf[STATUS_MSG_MAX];
		ssize_t n = status_recv(u->status_fd, buf, sizeof(buf));
		uint64_t v;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = u->status_fd, .events = POLLIN };
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return VERDICT_GONE;
			continue;
		}
		if (n <= 0)
			return VERDICT_GONE;
		if (status_parse(buf, (size_t)n, &rec) != 0) {
			msg_warn("status channel: malformed record ignored");
			continue;
		}
		if (strcmp(rec.kind, "abort") == 0)
			return VERDICT_ABORT;
		if (strcmp(rec.kind, "commit") != 0) {
			msg_warn("status channel: unexpected '%s' ignored", rec.kind);
			continue;
		}
		const char *d = status_get(&rec, "documents"), *b = status_get(&rec, "bson_bytes");
		snprintf(documents, size, "%s", d && blob_tool_parse_u64(d, &v) == 0 ? d : "");
		snprintf(bson_bytes, size, "%s", b && blob_tool_parse_u64(b, &v) == 0 ? b : "");
		return VERDICT_COMMIT;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "status-fd", required_argument, NULL, 'S' },
		{ "content-type", required_argument, NULL, 'T' },
		{ "meta", required_argument, NULL, 'm' },
		{ "container", required_argument, NULL, 'C' },
		{ "create-only", no_argument, NULL, 'E' },
		{ "check-config", no_argument, NULL, 'K' },
		{ "probe", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct upload u = { .status_fd = -1, .content_type = "application/gzip" };
	struct mab_config cfg;
	struct azure_client *client = NULL;
	struct block_upload *up = NULL;
	struct azure_error err;
	const char *config_path = MAB_DEFAULT_CONFIG, *container = NULL;
	bool config_given = false, have_cfg = false, check_config = false, probe_mode = false;
	char why[512] = "";
	int opt, rc = CHILD_EXIT_USAGE;
	uint64_t fdnum;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	memset(&cfg, 0, sizeof(cfg));
	log_open("upload-blob", LOG_TARGET_STDERR, LOG_INFO);
	/* libcurl with CURLOPT_NOSIGNAL leaves SIGPIPE to us: a dead peer
	 * must be an EPIPE error, not a silent death. */
	signal(SIGPIPE, SIG_IGN);

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			config_given = true;
			break;
		case 'S':
			if (blob_tool_parse_u64(optarg, &fdnum) != 0 || fdnum > 1024 ||
			    fdnum <= 2 || fcntl((int)fdnum, F_GETFD) < 0) {
				msg_error("--status-fd %s: not an open descriptor above 2", optarg);
				goto out;
			}
			u.status_fd = (int)fdnum;
			break;
		case 'T':
			if (*optarg == '\0' || !azure_valid_meta_value(optarg)) {
				msg_error("--content-type '%s' is not a valid header value", optarg);
				goto out;
			}
			u.content_type = optarg;
			break;
		case 'm':
			if (add_user_meta(&u, optarg) != 0)
				goto out;
			break;
		case 'C':
			container = optarg;
			break;
		case 'E':
			u.create_only = true;
			break;
		case 'K':
			check_config = true;
			break;
		case 'P':
			probe_mode = true;
			break;
		case 'h':
			usage(stdout);
			rc = CHILD_EXIT_OK;
			goto out;
		case 'V':
			printf("upload-blob (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			rc = CHILD_EXIT_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (check_config || probe_mode) {
		if (optind != argc) {
			usage(stderr);
			goto out;
		}
		rc = run_check(config_path, config_given, container, probe_mode);
		goto out;
	}
	if (optind + 1 != argc) {
		usage(stderr);
		goto out;
	}
	u.blob = argv[optind];
	if (!azure_valid_blob_name(u.blob)) {
		msg_error("blob name '%s' is not valid (1-1024 characters, no control "
			  "characters, not starting with '/' or ending with '/' or '.')", u.blob);
		snprintf(why, sizeof(why), "bad blob name");
		goto usage_error;
	}

	have_cfg = true;
	if (blob_tool_config("upload-blob", config_path, config_given, &cfg, why,
			     sizeof(why)) != 0)
		goto usage_error;
	client = blob_tool_client(&cfg, container, why, sizeof(why));
	if (client == NULL)
		goto usage_error;

	rc = CHILD_EXIT_FAILED;
	if (cfg.create_container) {
		bool created;
		if (azure_container_create(client, &created, &err) != 0) {
			rc = blob_tool_fail(u.status_fd, &err);
			goto out;
		}
		if (created)
			msg_notice("created container '%s'", client->container);
	}

	struct block_upload_opts bo = {
		.block_size = cfg.block_size,
		.concurrency = cfg.upload_concurrency,
		.progress = u.status_fd >= 0 ? on_progress : NULL,
		.progress_ctx = &u,
		.watch_fd = u.status_fd,
		.watch = u.status_fd >= 0 ? on_watch : NULL,
		.watch_ctx = &u,
	};
	up = block_upload_new(client, u.blob, &bo);
	if (up == NULL) {
		azure_error_local(&err, ENOMEM, "out of memory");
		rc = blob_tool_fail(u.status_fd, &err);
		goto out;
	}
	int staged = block_upload_stage(up, STDIN_FILENO, &err);
	if (staged == BLOCK_UPLOAD_ABORTED) {
		rc = aborted(&u, "abandoned while uploading");
		goto out;
	}
	if (staged != 0) {
		rc = blob_tool_fail(u.status_fd, &err);
		goto out;
	}
	const struct block_upload_stats *st = block_upload_stats(up);

	char documents[32] = "", bson_bytes[32] = "";
	if (u.status_fd >= 0) {
		if (status_send(u.status_fd, "staged bytes=%" PRIu64 " blocks=%" PRIu64
				" md5=%s sha256=%s", st->bytes_read, st->blocks,
				st->md5_b64, st->sha256_hex) != 0) {
			rc = aborted(&u, "status channel closed before commit");
			goto out;
		}
		switch (wait_verdict(&u, documents, bson_bytes, sizeof(documents))) {
		case VERDICT_COMMIT:
			break;
		case VERDICT_ABORT:
			rc = aborted(&u, "told to abort after staging");
			goto out;
		case VERDICT_GONE:
			rc = aborted(&u, "status channel closed before commit");
			goto out;
		}
	}

	size_t n = u.n_meta;
	u.meta[n++] = (struct azure_meta){ "sha256", st->sha256_hex };
	if (*documents)
		u.meta[n++] = (struct azure_meta){ "documents", documents };
	if (*bson_bytes)
		u.meta[n++] = (struct azure_meta){ "bsonbytes", bson_bytes };
	struct azure_put_opts po = {
		.content_type = u.content_type,
		.content_md5 = st->md5_b64,
		.meta = u.meta,
		.n_meta = n,
		.create_only = u.create_only,
	};
	if (block_upload_commit(up, &po, &err) != 0) {
		if (err.err_class && strcmp(err.err_class, ERR_CLASS_EXISTS) == 0) {
			/* Not a failure of ours: the caller asked to be told. */
			msg_info("%s", err.message);
			blob_tool_send_error(u.status_fd, err.err_class, err.status, err.code,
					     err.message);
			rc = CHILD_EXIT_FAILED;
		} else {
			rc = blob_tool_fail(u.status_fd, &err);
		}
		goto out;
	}
	/* Under the supervisor its own summary line says it all. */
	msg_log(u.status_fd >= 0 ? LOG_DEBUG : LOG_INFO,
		"uploaded %s (container %s): %" PRIu64 " bytes in %" PRIu64 " blocks, %.1f s "
		 "(%.1f MB/s), %" PRIu64 " retries", u.blob, client->container, st->bytes_read,
		 st->blocks, st->seconds,
		 st->seconds > 0 ? (double)st->bytes_read / 1e6 / st->seconds : 0.0,
		 st->retries);
	if (u.status_fd >= 0 &&
	    status_send(u.status_fd, "result ok bytes=%" PRIu64 " blocks=%" PRIu64
			" md5=%s sha256=%s", st->bytes_read, st->blocks, st->md5_b64,
			st->sha256_hex) != 0 && errno != EPIPE)
		msg_warn("status channel: %s", strerror(errno));
	rc = CHILD_EXIT_OK;
	goto out;

usage_error:
	blob_tool_send_error(u.status_fd, ERR_CLASS_LOCAL, 0, NULL,
			     *why ? why : "bad arguments or configuration");
	rc = CHILD_EXIT_USAGE;
out:
	block_upload_free(up);
	azure_client_free(client);
	if (have_cfg)
		config_free(&cfg);
	for (size_t i = 0; i < u.n_meta; i++)
		free(u.meta_buf[i]);
	return rc;
}
