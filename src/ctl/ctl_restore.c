/* ctl_restore.c - `mongo-azure-backupctl restore`: what to restore, whether
 * it can be, and the report of what was written.
 *
 *   restore SET [--collection C]... (--to-uri URI | --to-uri-file FILE |
 *           --to-dir DIR) [--to-db DB] [--drop] [--no-indexes] [--dry-run]
 *
 * Everything that can be known before writing is checked before writing:
 * the set and each collection's manifest entry (its names were checked as
 * hostile input when the manifest was read, backup_set.h; here the
 * namespaces in the target database), that every data blob is there with
 * the size the manifest says, that every metadata blob is there and
 * parses, and (MongoDB targets) that the server answers and no target
 * collection holds documents unless --drop.  Only then is anything
 * written.  What can only show while streaming (a corrupt or truncated
 * blob, a server that drops the connection or refuses a document) ends
 * that collection with a report of exactly what was written; the other
 * collections go on.  Exit 0 only when every collection was restored.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bson_stream.h"
#include "child_status.h"
#include "ctl_commands.h"
#include "ctl_restore_dir.h"
#include "ctl_restore_item.h"
#include "ctl_restore_mongo.h"
#include "metadata_json.h"

static void on_interrupt(int sig)
{
	restore_interrupted = sig;
}

static void print_plan(struct restore *rs)
{
	char a[128], b[32], c[32], d[256], e[PATH_MAX];

	for (size_t i = 0; i < rs->n; i++) {
		const struct restore_item *it = &rs->items[i];
		printf("  %-16s %lld document%s, %s BSON (%s gzip)",
		       ctl_clean(it->c->name, a, sizeof(a)), (long long)it->c->documents,
		       it->c->documents == 1 ? "" : "s",
		       ctl_bytes((uint64_t)it->c->bson_bytes, b, sizeof(b)),
		       ctl_bytes((uint64_t)it->c->gzip_bytes, c, sizeof(c)));
		if (it->with_metadata)
			printf(", %d index%s besides _id_", it->n_indexes,
			       it->n_indexes == 1 ? "" : "es");
		if (rs->to_dir != NULL) {
			printf(" -> %s", ctl_clean(it->path, e, sizeof(e)));
		} else {
			printf(" -> %s.%s", ctl_clean(rs->to_db, d, sizeof(d)), a);
			if (it->target_checked && it->target_exists)
				printf(" (exists, %llu document%s%s)",
				       (unsigned long long)it->target_documents,
				       it->target_documents == 1 ? "" : "s",
				       it->target_documents == 0 ? "" :
				       rs->drop ? ": would be dropped first" : ": REFUSED without --drop");
			else if (it->target_checked)
				printf(" (new)");
		}
		if (it->problem[0])
			printf(": %s", ctl_clean(it->problem, e, sizeof(e)));
		putchar('\n');
	}
}

/* ---- checking the request ----------------------------------------------- */

static struct restore_item *add_item(struct restore *rs, const struct set_coll *c)
{
	struct restore_item *p;

	for (size_t i = 0; i < rs->n; i++)
		if (rs->items[i].c == c)
			return &rs->items[i];
	p = realloc(rs->items, (rs->n + 1) * sizeof(*p));
	if (p == NULL)
		return NULL;
	rs->items = p;
	p = &rs->items[rs->n++];
	memset(p, 0, sizeof(*p));
	p->c = c;
	return p;
}

static void list_ok(const struct backup_set *s, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->n_colls && used < len; i++)
		if (strcmp(s->colls[i].result, "ok") == 0)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
						 s->colls[i].name);
}

/* The collections asked for (all by default), each restorable. */
static int select_items(struct restore *rs, char **names, size_t n_names)
{
	const struct backup_set *s = rs->set;
	char ok[1024], a[128];
	size_t bad = 0;

	if (!s->complete && n_names == 0) {
		list_ok(s, ok, sizeof(ok));
		ctl_err("%s is incomplete: its manifest is not marked complete (%zu of %zu "
			"collections backed up); nothing was restored.  Name the collections to "
			"restore from it with --collection%s%s%s", s->folder, set_count_ok(s),
			s->n_colls, ok[0] ? " (backed up: " : "", ok, ok[0] ? ")" : "");
		return CTL_FAILED;
	}
	for (size_t i = 0; i < n_names; i++) {
		const struct set_coll *c = set_find_coll(s, names[i]);
		if (c == NULL) {
			ctl_err("collection '%s' is not in %s", ctl_clean(names[i], a, sizeof(a)),
				s->folder);
			return CTL_USAGE;
		}
		if (add_item(rs, c) == NULL)
			goto oom;
	}
	if (n_names == 0)
		for (size_t i = 0; i < s->n_colls; i++)
			if (add_item(rs, &s->colls[i]) == NULL)
				goto oom;
	for (size_t i = 0; i < rs->n; i++) {
		const struct set_coll *c = rs->items[i].c;
		if (strcmp(c->result, "ok") == 0 && c->sha256 != NULL && c->documents >= 0)
			continue;
		bad++;
		ctl_err("%s: cannot be restored from %s: its backup %s%s%s",
			ctl_clean(c->name, a, sizeof(a)), s->folder,
			strcmp(c->result, "failed") == 0 ? "failed" : "did not finish",
			c->error ? ": " : "", c->error ? c->error : "");
	}
	if (bad > 0) {
		ctl_err("nothing was restored");
		return CTL_FAILED;
	}
	if (rs->n == 0) {
		ctl_err("%s lists no collections; nothing to restore", s->folder);
		return CTL_FAILED;
	}
	return CTL_OK;
oom:
	ctl_err("out of memory");
	return CTL_FAILED;
}

/* Names the target gives the collections: the namespace in the target
 * database (--to-db may be longer than the backup's).  The manifest's own
 * names were checked when it was read (backup_set.h). */
static size_t check_names(struct restore *rs)
{
	char why[256];
	size_t bad = 0;

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];

		if (set_valid_collection(rs->to_db, it->c->name, why, sizeof(why)))
			continue;
		restore_problem(it, "%s", why);
		it->result = "failed";
		bad++;
	}
	return bad;
}

/* Every data blob there with its recorded size; every metadata blob there
 * and sound.  Reads only small things, and holds none of them after. */
static size_t check_blobs(struct restore *rs)
{
	struct azure_client *client = rs->st->client;
	size_t bad = 0;

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];
		const struct set_coll *c = it->c;
		struct azure_blob_item props;
		struct azure_error err;
		bool was_bad = it->result != NULL;

		if (azure_get_properties(client, c->blob, &props, &err) != 0) {
			if (err.err_class != NULL && strcmp(err.err_class, ERR_CLASS_NOTFOUND) == 0)
				restore_problem(it, "data blob %s does not exist", c->blob);
			else
				restore_problem(it, "cannot read data blob %s: %s", c->blob,
						err.message);
		} else {
			if (c->gzip_bytes >= 0 && props.size != (uint64_t)c->gzip_bytes)
				restore_problem(it, "data blob %s is %llu bytes, the manifest says "
						"%lld", c->blob, (unsigned long long)props.size,
						(long long)c->gzip_bytes);
			azure_blob_item_free(&props);
		}
		if (!rs->no_indexes) {
			/* Checked now, read again when the collection's turn comes:
			 * holding every collection's at once is what a manifest
			 * naming one huge metadata blob many times would exploit. */
			it->with_metadata = restore_load_metadata(rs, it) == 0;
			restore_free_metadata(it);
		}
		if (it->problem[0]) {
			it->result = "failed";
			if (!was_bad)
				bad++;
		}
	}
	return bad;
}

static char *read_uri_file(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	char *out = NULL;

	if (fd < 0) {
		ctl_err("--to-uri-file: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		ctl_err("--to-uri-file: cannot read %s: %s", path, strerror(errno));
	} else {
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
		if (buf[0] == '\0')
			ctl_err("--to-uri-file: %s holds no URI", path);
		else if ((out = strdup(buf)) == NULL)
			ctl_err("out of memory");
	}
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return out;
}

static void usage(void)
{
	printf("Usage: " CTL_PROG " [-c CONF] restore SET [--collection C]...\n"
	       "         (--to-uri URI | --to-uri-file FILE | --to-dir DIR)\n"
	       "         [--to-db DB] [--drop] [--no-indexes] [--dry-run]\n"
	       "Restores the backup set SET (or 'latest': the newest complete one) into a\n"
	       "MongoDB (documents, then indexes) or into DIR as mongodump's layout\n"
	       "(DIR/DB/COLL.bson + COLL.metadata.json) for mongorestore.  A target\n"
	       "collection that holds documents is refused unless --drop, which drops it\n"
	       "first.  --dry-run checks everything and writes nothing.\n");
}

static void free_restore(struct restore *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->items[i].metadata);
	free(rs->items);
	if (rs->to_uri != NULL) {
		explicit_bzero(rs->to_uri, strlen(rs->to_uri));
		free(rs->to_uri);
	}
}

static int summary(struct restore *rs)
{
	size_t ok = 0, refused = 0;
	char a[512], b[256];

	for (size_t i = 0; i < rs->n; i++) {
		if (rs->items[i].result != NULL && strcmp(rs->items[i].result, "ok") == 0)
			ok++;
		if (rs->items[i].result != NULL && strcmp(rs->items[i].result, "refused") == 0)
			refused++;
	}
	printf("%s %zu of %zu collection%s from %s into %s%s%s", ok == rs->n ? "restored" :
	       "RESTORE INCOMPLETE:", ok, rs->n, rs->n == 1 ? "" : "s",
	       ctl_clean(rs->set->folder, a, sizeof(a)),
	       rs->to_dir ? "directory " : "database ",
	       ctl_clean(rs->to_dir ? rs->to_dir : rs->to_db, b, sizeof(b)),
	       restore_interrupted ? " (interrupted)" : "");
	putchar('\n');
	return ok == rs->n ? CTL_OK : CTL_FAILED;
}

int ctl_restore(const char *conf_path, bool conf_explicit, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "collection", required_argument, NULL, 'C' },
		{ "to-uri", required_argument, NULL, 'u' },
		{ "to-uri-file", required_argument, NULL, 'U' },
		{ "to-dir", required_argument, NULL, 'o' },
		{ "to-db", required_argument, NULL, 'd' },
		{ "drop", no_argument, NULL, 'D' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-indexes", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore rs = { .tty = ctl_tty_width() };
	struct ctl_store st = { 0 };
	struct set_list l = { 0 };
	struct sigaction sa, old_int, old_term;
	const char *uri_file = NULL, *set_name;
	char **names = NULL;
	size_t n_names = 0, bad;
	bool have_signals = false;
	char a[1024], b[64], c[512];
	long idx;
	int opt, r = CTL_USAGE;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'C': {
			char **p = realloc(names, (n_names + 1) * sizeof(*p));
			if (p == NULL) {
				ctl_err("out of memory");
				r = CTL_FAILED;
				goto out;
			}
			names = p;
			names[n_names++] = optarg;
			break;
		}
		case 'u':
			free(rs.to_uri);
			rs.to_uri = strdup(optarg);
			/* Out of ps(1) from now on; it was visible until here,
			 * which is why --to-uri-file exists. */
			memset(optarg, 'x', strlen(optarg));
			if (rs.to_uri == NULL) {
				ctl_err("out of memory");
				r = CTL_FAILED;
				goto out;
			}
			break;
		case 'U': uri_file = optarg; break;
		case 'o': rs.to_dir = optarg; break;
		case 'd': rs.to_db = optarg; break;
		case 'D': rs.drop = true; break;
		case 'n': rs.dry_run = true; break;
		case 'I': rs.no_indexes = true; break;
		case 'h': usage(); r = CTL_OK; goto out;
		default: r = ctl_usage_hint(); goto out;
		}
	}
	if (optind >= argc) {
		r = ctl_usage_error("restore: which set? (a folder such as 2026-11-27, or "
				    "'latest'; see '" CTL_PROG " list')");
		goto out;
	}
	if (optind + 1 < argc) {
		r = ctl_usage_error("restore: unexpected argument '%s'", argv[optind + 1]);
		goto out;
	}
	set_name = argv[optind];
	if ((rs.to_uri != NULL) + (uri_file != NULL) + (rs.to_dir != NULL) != 1) {
		r = ctl_usage_error("restore: give exactly one target: --to-uri, --to-uri-file "
				    "or --to-dir");
		goto out;
	}
	if (rs.to_dir != NULL && rs.drop) {
		r = ctl_usage_error("restore: --drop is for a MongoDB target; --to-dir never "
				    "overwrites a file");
		goto out;
	}
	if (rs.to_dir != NULL && *rs.to_dir == '\0') {
		r = ctl_usage_error("restore: --to-dir needs a directory");
		goto out;
	}
	if (rs.to_db != NULL && *rs.to_db == '\0') {
		r = ctl_usage_error("restore: --to-db needs a database name");
		goto out;
	}
	if (rs.to_db != NULL && !set_valid_database(rs.to_db, c, sizeof(c))) {
		r = ctl_usage_error("restore: --to-db: %s", c);
		goto out;
	}
	if (uri_file != NULL && (rs.to_uri = read_uri_file(uri_file)) == NULL) {
		r = CTL_USAGE;
		goto out;
	}

	r = ctl_store_open(&st, conf_path, conf_explicit);
	if (r != CTL_OK)
		goto out;
	rs.st = &st;
	/* "latest" for a restore: the newest set that can be restored whole. */
	r = ctl_pick_set(&st, set_name, true, false, &l, &idx);
	if (r != CTL_OK)
		goto out;
	rs.set = &l.sets[idx];
	if (!rs.set->loaded) {
		ctl_err("%s; nothing was restored", ctl_clean(rs.set->load_error ? rs.set->load_error :
			"cannot read the manifest", a, sizeof(a)));
		r = CTL_FAILED;
		goto out;
	}
	if (rs.to_db == NULL)
		rs.to_db = rs.set->database;
	r = select_items(&rs, names, n_names);
	if (r != CTL_OK)
		goto out;

	printf("%s %s (started %s, %s) %s %s%s\n", rs.dry_run ? "dry run: restore" : "restore",
	       ctl_clean(rs.set->folder, a, sizeof(a)), ctl_when(rs.set->started, b, sizeof(b)),
	       rs.set->complete ? "complete" : "incomplete", rs.to_dir ? "into directory" :
	       "into database", ctl_clean(rs.to_dir ? rs.to_dir : rs.to_db, c, sizeof(c)),
	       rs.to_dir == NULL && rs.drop ? ", dropping what is there" : "");
	fflush(stdout);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, &old_int) != 0 || sigaction(SIGTERM, &sa, &old_term) != 0) {
		ctl_err("cannot install signal handlers: %s", strerror(errno));
		r = CTL_FAILED;
		goto out;
	}
	have_signals = true;

	bad = check_names(&rs);
	bad += check_blobs(&rs);
	bad += rs.to_dir ? restore_dir_check(&rs) : restore_mongo_preflight(&rs);
	if (restore_interrupted) {
		printf("interrupted before anything was written\n");
		r = CTL_FAILED;
		goto out;
	}
	if (rs.dry_run || bad > 0) {
		print_plan(&rs);
		if (bad > 0)
			printf("%zu of %zu collection%s cannot be restored as asked; nothing was "
			       "written\n", bad, rs.n, rs.n == 1 ? "" : "s");
		else
			printf("dry run: nothing was written\n");
		r = bad > 0 ? CTL_FAILED : CTL_OK;
		goto out;
	}
	if (rs.to_dir)
		restore_dir_run(&rs);
	else
		restore_mongo_run(&rs);
	r = summary(&rs);
out:
	if (have_signals) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	if (fflush(stdout) != 0 && r == CTL_OK)
		r = CTL_FAILED;
	free(names);
	free_restore(&rs);
	sets_free(&l);
	ctl_store_close(&st);
	return r;
}
