/* prune_sets.c - the prune-sets helper: applies [retention] to the container.
 *
 *   prune-sets [-c CONF] [--status-fd N] [--dry-run] [-v]
 *              [--current-set FOLDER] [--today YYYY-MM-DD]
 *
 * Lists the container under the fixed prefix of [azure] blob_path, groups
 * the names that parse under the layout into sets, reads each set's
 * manifest.json, lets retention.c decide, prints the plan ("keep|delete
 * FOLDER: reason") and, unless --dry-run, deletes.  Names that do not
 * parse under the layout are never touched ("leave NAME" lines with -v).
 *
 * Deleting a set whose manifest says complete first rewrites that manifest
 * as incomplete, then deletes the other blobs, then the manifest last: a
 * set interrupted half way never looks complete, and one whose manifest is
 * immutable (WORM) is skipped before anything of it is touched.
 *
 * With --status-fd the last records are "newest found=1 finished=UNIXTIME
 * set=FOLDER" (the newest complete set that stays; "newest found=0" when
 * there is none) and "result ok sets_deleted=N blobs_deleted=N sets_kept=N
 * immutable=N", or "result error class=C ...".
 * Exit: 0 done, 1 failed or refused, 2 usage or configuration.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob_tool.h"
#include "child_status.h"
#include "log.h"
#include "set_layout.h"
#include "no_core.h"
#include "retention.h"

/* Manifests are a few KiB; anything this big is not one of ours. */
#define MANIFEST_READ_MAX (16u << 20)

struct prune {
	int status_fd;                  /* -1 standalone */
	bool dry_run;
	bool verbose;
	struct azure_client *client;
	struct retention_layout layout;
	struct retention_sets sets;
	size_t n_foreign;

	size_t sets_deleted;
	size_t sets_kept;
	size_t sets_immutable;
	uint64_t blobs_deleted;
	uint64_t blobs_gone;            /* already deleted (404) */
};

struct membuf {
	char *data;
	size_t len;
	size_t cap;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: prune-sets [-c CONF] [--status-fd N] [--dry-run] [-v]\n"
		"                  [--current-set FOLDER] [--today YYYY-MM-DD]\n"
		"Deletes the backup sets [retention] says are too old, keeping the newest\n"
		"keep_min complete sets however old.  Prints one line per set:\n"
		"  keep|delete FOLDER: reason\n"
		"and with -v a 'leave NAME' line for every blob not under the layout.\n"
		"  --dry-run            print the plan, delete nothing\n"
		"  --current-set FOLDER refuse to delete anything unless this set is complete\n"
		"  --today YYYY-MM-DD   the UTC date to count from (tests)\n");
}


/* Blob names are the container's, not ours: keep control bytes off the
 * terminal. */
static void print_name(const char *name)
{
	for (const unsigned char *s = (const unsigned char *)name; *s; s++)
		putchar(*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* ---- listing ------------------------------------------------------------ */

static int on_blob(void *ctx, const struct azure_blob_item *item)
{
	struct prune *p = ctx;
	struct retention_name rn;

	if (item->is_prefix)
		return 0;
	if (!retention_parse_name(&p->layout, item->name, &rn)) {
		p->n_foreign++;
		if (p->verbose) {
			fputs("leave ", stdout);
			print_name(item->name);
			fputs(": not under the layout\n", stdout);
		}
		return 0;
	}
	/* A non-zero return stops the listing and comes back from it. */
	return retention_sets_add(&p->sets, &rn, item->name, item->size) == 0 ? 0 : 1;
}

/* ---- manifests ---------------------------------------------------------- */

static int mem_sink(void *ctx, const void *data, size_t len)
{
	struct membuf *b = ctx;

	if (len > MANIFEST_READ_MAX - b->len) {
		errno = EFBIG;
		return -1;
	}
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			errno = ENOMEM;
			return -1;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* Learns whether set s is complete.  -1 (err filled) only for storage
 * failures that make the whole prune unsafe to continue. */
static int read_manifest(struct prune *p, struct retention_set *s, struct azure_error *err)
{
	char name[BLOB_NAME_MAX + sizeof(MANIFEST_NAME)], why[256] = "";
	struct membuf b = { 0 };
	int rc = 0;

	if (!s->has_manifest) {
		s->manifest = RETENTION_NO_MANIFEST;
		return 0;
	}
	snprintf(name, sizeof(name), "%s%s", s->folder, MANIFEST_NAME);
	if (s->manifest_size > MANIFEST_READ_MAX) {
		s->manifest = RETENTION_UNREADABLE;
		snprintf(why, sizeof(why), "%" PRIu64 " bytes, more than a manifest can be",
			 s->manifest_size);
		goto report;
	}
	if (azure_get_blob(p->client, name, 0, mem_sink, &b, NULL, err) != 0) {
		if (err->sys_errno == EFBIG) {
			s->manifest = RETENTION_UNREADABLE;
			snprintf(why, sizeof(why), "more than %u bytes", MANIFEST_READ_MAX);
			goto report;
		}
		if (err->status == 404) {
			/* Deleted since the listing (another prune): it vouches for
			 * nothing any more. */
			msg_warn("%s: gone since the listing; the set counts as having no "
				 "manifest", name);
			s->manifest = RETENTION_NO_MANIFEST;
			goto out;
		}
		rc = -1;
		goto out;
	}
	s->manifest = retention_manifest_parse(b.data ? b.data : "", b.len, why, sizeof(why));
	if (s->manifest == RETENTION_COMPLETE)
		s->finished = retention_manifest_finished(b.data, b.len);
report:
	if (s->manifest == RETENTION_UNREADABLE)
		msg_warn("%s/%s: not a usable manifest (%s); the set counts as not complete",
			 p->client->container, name, why);
out:
	free(b.data);
	return rc;
}

/* ---- deleting ----------------------------------------------------------- */

static bool is_immutable(const struct azure_error *err)
{
	return err->status == 409 && strncmp(err->code, "BlobImmutable", 13) == 0;
}

static void log_immutable(const struct prune *p, const struct retention_set *s,
			  const char *blob, const char *code, bool *logged)
{
	if (*logged)
		return;
	msg_warn("%s/%s is immutable (%s): set %s keeps its immutable blobs; they are "
		 "not retried until the next prune", p->client->container, blob,
		 *code ? code : "WORM policy", s->folder);
	*logged = true;
}

/* 0 done (deleted, already gone, or immutable and skipped), -1 failed. */
static int delete_blob(struct prune *p, const struct retention_set *s, const char *blob,
		       bool *immutable, struct azure_error *err)
{
	switch (azure_delete_blob(p->client, blob, err)) {
	case AZURE_DELETED:
		msg_info("deleted %s/%s", p->client->container, blob);
		p->blobs_deleted++;
		return 0;
	case AZURE_DELETE_NOT_FOUND:
		msg_info("%s/%s: already gone", p->client->container, blob);
		p->blobs_gone++;
		return 0;
	case AZURE_DELETE_IMMUTABLE:
		log_immutable(p, s, blob, err->code, immutable);
		return 0;
	case AZURE_DELETE_FAILED:
		break;
	}
	return -1;
}

/* Rewrites a complete manifest as incomplete before anything of the set
 * goes.  1: its manifest is immutable, leave the set alone. */
static int demote_manifest(struct prune *p, const struct retention_set *s,
			   const char *manifest, bool *immutable, struct azure_error *err)
{
	static const struct azure_put_opts opts = { .content_type = "application/json" };
	bson_t doc = BSON_INITIALIZER;
	size_t len = 0;
	char *json;
	int rc = -1;

	BSON_APPEND_INT32(&doc, "format", MANIFEST_FORMAT);
	BSON_APPEND_UTF8(&doc, "set", s->folder);
	BSON_APPEND_BOOL(&doc, "complete", false);
	BSON_APPEND_BOOL(&doc, "deleting", true);
	json = bson_as_relaxed_extended_json(&doc, &len);
	bson_destroy(&doc);
	if (json == NULL) {
		azure_error_local(err, ENOMEM, "out of memory");
		return -1;
	}
	if (azure_put_blob(p->client, manifest, json, len, &opts, err) == 0) {
		rc = 0;
	} else if (is_immutable(err)) {
		log_immutable(p, s, manifest, err->code, immutable);
		rc = 1;
	}
	bson_free(json);
	return rc;
}

static int delete_set(struct prune *p, const struct retention_set *s, struct azure_error *err)
{
	char manifest[BLOB_NAME_MAX + sizeof(MANIFEST_NAME)];
	bool immutable = false;
	int r;

	snprintf(manifest, sizeof(manifest), "%s%s", s->folder, MANIFEST_NAME);
	msg_info("deleting set %s: %s", s->folder, s->reason);
	if (s->has_manifest && s->manifest == RETENTION_COMPLETE) {
		r = demote_manifest(p, s, manifest, &immutable, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			p->sets_immutable++;
			return 0;
		}
	}
	for (size_t i = 0; i < s->n_blobs; i++) {
		if (strcmp(s->blobs[i], manifest) == 0)
			continue;
		if (delete_blob(p, s, s->blobs[i], &immutable, err) != 0)
			return -1;
	}
	/* Last: until the other blobs are gone, the manifest (demoted above if
	 * it said complete) marks what is left as an unfinished set. */
	if (s->has_manifest && delete_blob(p, s, manifest, &immutable, err) != 0)
		return -1;
	if (immutable)
		p->sets_immutable++;
	else
		p->sets_deleted++;
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void report_ok(const struct prune *p, size_t would_delete)
{
	char extra[64] = "";
	int r;

	if (p->status_fd < 0)
		return;
	/* What stays in storage: the daemon's idea of the last good backup
	 * comes from here, not from its memory of its own runs. */
	const struct retention_set *newest = retention_newest_complete(&p->sets, p->dry_run);
	bool printable = newest != NULL;
	for (const char *c = newest ? newest->folder : ""; *c; c++)
		if (*c <= ' ' || *c == 0x7f)
			printable = false;
	if (printable)
		r = status_send(p->status_fd, "newest found=1 finished=%lld set=%s",
				newest->finished < 0 ? 0 : newest->finished, newest->folder);
	else
		r = status_send(p->status_fd, "newest found=0");
	if (r != 0 && errno != EPIPE)
		msg_warn("status channel: %s", strerror(errno));
	if (p->dry_run)
		snprintf(extra, sizeof(extra), " dry_run=1 would_delete=%zu", would_delete);
	if (status_send(p->status_fd, "result ok sets_deleted=%zu blobs_deleted=%" PRIu64
			" sets_kept=%zu immutable=%zu%s", p->sets_deleted, p->blobs_deleted,
			p->sets_kept, p->sets_immutable, extra) != 0 && errno != EPIPE)
		msg_warn("status channel: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "status-fd", required_argument, NULL, 'S' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "current-set", required_argument, NULL, 'C' },
		{ "today", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct prune p = { .status_fd = -1 };
	struct mab_config cfg;
	struct azure_error err;
	struct retention_name current;
	struct retention_policy policy = { 0 };
	const char *config_path = MAB_DEFAULT_CONFIG, *current_arg = NULL, *today_arg = NULL;
	bool config_given = false, have_cfg = false;
	char why[768] = "";
	size_t would_delete = 0;
	int opt, r, rc = CHILD_EXIT_USAGE;
	uint64_t fdnum;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	memset(&cfg, 0, sizeof(cfg));
	log_open("prune-sets", LOG_TARGET_STDERR, LOG_INFO);
	/* libcurl with CURLOPT_NOSIGNAL leaves SIGPIPE to us. */
	signal(SIGPIPE, SIG_IGN);

	while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
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
			p.status_fd = (int)fdnum;
			break;
		case 'n':
			p.dry_run = true;
			break;
		case 'C':
			current_arg = optarg;
			break;
		case 'T':
			today_arg = optarg;
			break;
		case 'v':
			p.verbose = true;
			break;
		case 'h':
			usage(stdout);
			rc = CHILD_EXIT_OK;
			goto out;
		case 'V':
			printf("prune-sets (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			rc = CHILD_EXIT_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind != argc) {
		usage(stderr);
		snprintf(why, sizeof(why), "unexpected argument '%s'", argv[optind]);
		goto usage_error;
	}
	if (today_arg != NULL) {
		if (retention_parse_date(today_arg, &policy.today) != 0) {
			snprintf(why, sizeof(why), "--today '%s' is not a date (YYYY-MM-DD)",
				 today_arg);
			msg_error("%s", why);
			goto usage_error;
		}
	} else {
		time_t now = time(NULL);
		if (now == (time_t)-1) {
			snprintf(why, sizeof(why), "time: %s", strerror(errno));
			msg_error("%s", why);
			goto usage_error;
		}
		policy.today = retention_day_of(now);
	}

	have_cfg = true;
	if (blob_tool_config("prune-sets", config_path, config_given, &cfg, why,
			     sizeof(why)) != 0)
		goto usage_error;
	if (retention_layout_init(&p.layout, cfg.blob_path, why, sizeof(why)) != 0) {
		msg_error("blob_path: %s", why);
		goto usage_error;
	}
	if (current_arg != NULL) {
		if (!retention_parse_folder(&p.layout, current_arg, &current)) {
			snprintf(why, sizeof(why), "--current-set '%s' is not a set folder under "
				 "blob_path '%s'", current_arg, cfg.blob_path);
			msg_error("%s", why);
			goto usage_error;
		}
		policy.current_set = current.folder;
	}
	policy.days = cfg.retention_days;
	policy.keep_min = cfg.keep_min;
	p.client = blob_tool_client(&cfg, NULL, why, sizeof(why));
	if (p.client == NULL)
		goto usage_error;

	rc = CHILD_EXIT_FAILED;
	r = azure_list_blobs(p.client, p.layout.prefix, NULL, on_blob, &p, &err);
	if (r > 0)
		azure_error_local(&err, ENOMEM, "out of memory while listing");
	if (r != 0) {
		rc = blob_tool_fail(p.status_fd, &err);
		goto out;
	}
	for (size_t i = 0; i < p.sets.n; i++) {
		if (read_manifest(&p, &p.sets.v[i], &err) != 0) {
			rc = blob_tool_fail(p.status_fd, &err);
			goto out;
		}
	}

	if (retention_plan(&p.sets, &policy, why, sizeof(why)) != 0) {
		char msg[sizeof(why) + 64];
		snprintf(msg, sizeof(msg), "refusing to prune: %s; nothing was deleted", why);
		msg_error("%s", msg);
		blob_tool_send_error(p.status_fd, ERR_CLASS_LOCAL, 0, NULL, msg);
		goto out;
	}
	for (size_t i = 0; i < p.sets.n; i++) {
		const struct retention_set *s = &p.sets.v[i];
		printf("%s %s: %s\n", s->remove ? "delete" : "keep", s->folder, s->reason);
		if (s->remove)
			would_delete++;
		else
			p.sets_kept++;
	}
	if (fflush(stdout) != 0 && errno != EPIPE)
		msg_warn("stdout: %s", strerror(errno));
	msg_info("%s/%s: %zu sets (%zu to keep, %zu to delete), %zu other blobs left alone; "
		 "%d days, keep_min %d", p.client->container, p.layout.prefix, p.sets.n,
		 p.sets_kept, would_delete, p.n_foreign, policy.days, policy.keep_min);

	if (!p.dry_run) {
		for (size_t i = 0; i < p.sets.n; i++) {
			if (p.sets.v[i].remove && delete_set(&p, &p.sets.v[i], &err) != 0) {
				msg_error("stopped at set %s: nothing more is deleted in this run",
					  p.sets.v[i].folder);
				rc = blob_tool_fail(p.status_fd, &err);
				goto out;
			}
		}
		msg_notice("retention: %zu sets deleted (%" PRIu64 " blobs, %" PRIu64 " already "
			   "gone), %zu kept, %zu with immutable blobs", p.sets_deleted,
			   p.blobs_deleted, p.blobs_gone, p.sets_kept, p.sets_immutable);
	} else {
		msg_notice("dry run: %zu sets would be deleted, %zu kept; nothing was deleted",
			   would_delete, p.sets_kept);
	}
	report_ok(&p, would_delete);
	rc = CHILD_EXIT_OK;
	goto out;

usage_error:
	blob_tool_send_error(p.status_fd, ERR_CLASS_LOCAL, 0, NULL,
			     *why ? why : "bad arguments or configuration");
	rc = CHILD_EXIT_USAGE;
out:
	retention_sets_free(&p.sets);
	azure_client_free(p.client);
	if (have_cfg)
		config_free(&cfg);
	return rc;
}
