/* verify_set.c - verify-set: verify one backup set and record the verdict,
 * as a helper the daemon can run after a backup ([verify] after_backup).
 *
 *   verify-set [-c CONF] [--status-fd N] [--no-record] SET
 *
 * The same checks as `mongo-azure-backupctl verify` (set_verify.h).  SET is
 * a set folder ("backups/2026-11-27/"), its last segment(s), or "latest".
 * Records on --status-fd (child_status.h framing; names percent-escaped
 * outside [A-Za-z0-9._-]):
 *   progress collection=NAME index=I of=N            a collection begins
 *   progress collection=NAME gzip_bytes=N documents=N    while it streams
 *   collection name=NAME result=R documents=N gzip_bytes=N indexes=N
 *              [message=problems]                      its verdict
 *   result ok set=FOLDER verified_at=ISO recorded=0|1 collections=N
 *   result error class=failed|incomplete|error set=FOLDER verified_at=ISO
 *              recorded=0|1 message=...
 * Exit: 0 the set is complete and intact, 1 it is not (or could not be
 * checked), 2 usage or configuration.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_set.h"
#include "blob_tool.h"
#include "child_status.h"
#include "log.h"
#include "path_template.h"
#include "no_core.h"
#include "set_verify.h"

struct reporter {
	int status_fd;
};

static const char *esc(const char *s, char *buf, size_t len)
{
	if (path_escape_collection(s, buf, len) != 0)
		snprintf(buf, len, "?");
	return buf;
}

static void on_begin(void *ctx, const struct set_coll *c, size_t i, size_t n)
{
	struct reporter *r = ctx;
	char name[1024];

	if (r->status_fd >= 0)
		status_send(r->status_fd, "progress collection=%s index=%zu of=%zu",
			    esc(c->label, name, sizeof(name)), i + 1, n);
}

static void on_progress(void *ctx, const struct set_coll *c, uint64_t gzip_done,
			uint64_t documents)
{
	struct reporter *r = ctx;
	char name[1024];

	if (r->status_fd >= 0)
		status_send(r->status_fd, "progress collection=%s gzip_bytes=%llu documents=%llu",
			    esc(c->label, name, sizeof(name)), (unsigned long long)gzip_done,
			    (unsigned long long)documents);
}

static void on_done(void *ctx, const struct coll_verdict *v)
{
	struct reporter *r = ctx;
	char name[1024];

	if (strcmp(v->result, "ok") == 0)
		msg_info("%s: ok, %llu documents, %llu gzip bytes", v->label,
			 (unsigned long long)v->documents, (unsigned long long)v->gzip_bytes);
	else
		msg_error("%s: %s: %s", v->label, v->result, v->problem);
	if (r->status_fd >= 0)
		status_send(r->status_fd, "collection name=%s result=%s documents=%llu "
			    "gzip_bytes=%llu indexes=%d%s%s", esc(v->label, name, sizeof(name)),
			    v->result, (unsigned long long)v->documents,
			    (unsigned long long)v->gzip_bytes, v->indexes,
			    v->problem[0] ? " message=" : "", v->problem);
}

static void usage(FILE *fp)
{
	fprintf(fp, "Usage: verify-set [-c CONF] [--status-fd N] [--no-record] SET\n"
		    "Verifies backup set SET (a folder, its date, or 'latest': the newest\n"
		    "complete one) against its\n"
		    "manifest and records the verdict in SET/%s.\n", SET_VERIFICATION);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "status-fd", required_argument, NULL, 's' },
		{ "no-record", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct reporter rep = { .status_fd = -1 };
	struct set_verify_hooks hooks = { on_begin, on_progress, on_done, &rep };
	struct mab_config cfg;
	struct azure_client *client = NULL;
	struct set_list l = { 0 };
	struct set_verdict v = { 0 };
	struct azure_error err;
	const char *config_path = MAB_DEFAULT_CONFIG;
	bool config_given = false, have_cfg = false, record = true, recorded = false;
	char why[1024], folder[1024];
	long idx;
	int opt, rc = CHILD_EXIT_USAGE;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	memset(&cfg, 0, sizeof(cfg));
	log_open("verify-set", LOG_TARGET_STDERR, LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; config_given = true; break;
		case 's': {
			uint64_t fd;
			if (blob_tool_parse_u64(optarg, &fd) != 0 || fd > 65535) {
				msg_error("--status-fd '%s' is not a file descriptor", optarg);
				goto out;
			}
			rep.status_fd = (int)fd;
			break;
		}
		case 'n': record = false; break;
		case 'h': usage(stdout); rc = CHILD_EXIT_OK; goto out;
		case 'V':
			printf("verify-set (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			rc = CHILD_EXIT_OK;
			goto out;
		default: usage(stderr); goto out;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		goto out;
	}
	have_cfg = true;
	if (blob_tool_config("verify-set", config_path, config_given, &cfg, why,
			     sizeof(why)) != 0)
		goto report;
	client = blob_tool_client(&cfg, NULL, why, sizeof(why));
	if (client == NULL)
		goto report;

	rc = CHILD_EXIT_FAILED;
	if (sets_scan(client, &l, &err) != 0) {
		snprintf(why, sizeof(why), "cannot list container '%s': %s", client->container,
			 err.message);
		msg_error("%s", why);
		goto report;
	}
	if (strcmp(argv[optind], "latest") == 0)
		sets_load_all(client, &l);
	idx = sets_resolve(&l, argv[optind], true, why, sizeof(why));
	if (idx < 0) {
		msg_error("%s", why);
		goto report;
	}
	if (!l.sets[idx].loaded)
		set_load(client, &l.sets[idx]);
	msg_info("verifying %s", l.sets[idx].folder);
	rc = set_verify(client, &l.sets[idx], &hooks, &v) == 0 ? CHILD_EXIT_OK : CHILD_EXIT_FAILED;
	if (record) {
		if (set_verdict_record(client, &l.sets[idx], &v, &err) == 0)
			recorded = true;
		else
			msg_warn("cannot record the verdict in %s%s: %s", l.sets[idx].folder,
				 SET_VERIFICATION, err.message);
	}
	esc(l.sets[idx].folder, folder, sizeof(folder));
	if (rc == CHILD_EXIT_OK) {
		msg_info("%s: ok (%zu collections) in %.1f s", l.sets[idx].folder, v.n, v.seconds);
		if (rep.status_fd >= 0)
			status_send(rep.status_fd, "result ok set=%s verified_at=%s recorded=%d "
				    "collections=%zu", folder, v.verified_at, recorded ? 1 : 0, v.n);
	} else {
		size_t bad = 0;
		for (size_t i = 0; i < v.n; i++)
			bad += strcmp(v.colls[i].result, "ok") != 0;
		snprintf(why, sizeof(why), "%s: %zu of %zu collections not ok%s%s",
			 l.sets[idx].folder, bad, v.n, v.problem[0] ? "; " : "", v.problem);
		msg_error("%s", why);
		if (rep.status_fd >= 0)
			status_send(rep.status_fd, "result error class=%s set=%s verified_at=%s "
				    "recorded=%d message=%s", v.result, folder, v.verified_at,
				    recorded ? 1 : 0, why);
	}
	goto out;
report:
	if (rep.status_fd >= 0)
		status_send(rep.status_fd, "result error class=%s message=%s",
			    rc == CHILD_EXIT_USAGE ? ERR_CLASS_LOCAL : "error", why);
out:
	set_verdict_free(&v);
	sets_free(&l);
	azure_client_free(client);
	if (have_cfg)
		config_free(&cfg);
	return rc;
}
