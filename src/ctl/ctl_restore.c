/* ctl_restore.c - `mongo-azure-backupctl restore`: what to restore, whether
 * it can be, and the report of what was written.
 *
 *   restore SET [--collection C]... (--to-uri URI | --to-uri-file FILE |
 *           --to-dir DIR) [--db DB] [--to-db DB] [--users-and-roles] [--drop]
 *           [--no-indexes] [--dry-run]
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
		       ctl_clean(it->c->label, a, sizeof(a)), (long long)it->c->documents,
		       it->c->documents == 1 ? "" : "s",
		       ctl_bytes((uint64_t)it->c->bson_bytes, b, sizeof(b)),
		       ctl_bytes((uint64_t)it->c->gzip_bytes, c, sizeof(c)));
		if (it->with_metadata)
			printf(", %d index%s besides _id_", it->n_indexes,
			       it->n_indexes == 1 ? "" : "es");
		if (rs->to_dir != NULL) {
			printf(" -> %s", ctl_clean(it->path, e, sizeof(e)));
		} else {
			printf(" -> %s.%s", ctl_clean(it->to_db, d, sizeof(d)), a);
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
						 s->colls[i].label);
}

static bool is_auth(const struct set_coll *c)
{
	return strcmp(c->type, "users") == 0 || strcmp(c->type, "roles") == 0;
}

/* A name given with --collection: COLL of --db, DB.COLL, or a COLL only
 * one database of the set has.  NULL after saying why. */
static const struct set_coll *find_named(const struct restore *rs, const char *name)
{
	const struct backup_set *s = rs->set;
	const struct set_coll *found = NULL;
	const char *dot = strchr(name, '.');
	char a[128], dbs[512] = "";
	size_t n = 0, used = 0;

	for (size_t i = 0; i < s->n_colls; i++) {
		const struct set_coll *c = &s->colls[i];
		if (rs->only_db != NULL) {
			if (strcmp(c->database, rs->only_db) == 0 && strcmp(c->name, name) == 0)
				return c;
			continue;
		}
		if (dot != NULL && strlen(c->database) == (size_t)(dot - name) &&
		    strncmp(c->database, name, (size_t)(dot - name)) == 0 &&
		    strcmp(c->name, dot + 1) == 0)
			return c;
	}
	for (size_t i = 0; rs->only_db == NULL && i < s->n_colls; i++) {
		const struct set_coll *c = &s->colls[i];
		if (strcmp(c->name, name) != 0)
			continue;
		found = c;
		n++;
		used += (size_t)snprintf(dbs + used, used < sizeof(dbs) ? sizeof(dbs) - used : 0,
					 "%s%s", used ? ", " : "", c->database);
	}
	if (n == 1)
		return found;
	if (n > 1)
		ctl_err("collection '%s' is in %zu databases of %s (%s): name it as DATABASE.%s "
			"or choose the database with --db", ctl_clean(name, a, sizeof(a)), n,
			s->folder, dbs, a);
	else if (rs->only_db != NULL)
		ctl_err("collection '%s' is not in database %s of %s", ctl_clean(name, a, sizeof(a)),
			rs->only_db, s->folder);
	else
		ctl_err("collection '%s' is not in %s", ctl_clean(name, a, sizeof(a)), s->folder);
	return NULL;
}

/* The collections asked for (all by default, of --db if given; users and
 * roles with --users-and-roles), each restorable. */
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
	if (rs->only_db != NULL) {
		bool there = false;
		for (size_t i = 0; i < s->n_colls; i++)
			there |= strcmp(s->colls[i].database, rs->only_db) == 0;
		if (!there) {
			ctl_err("database '%s' is not in %s", ctl_clean(rs->only_db, a, sizeof(a)),
				s->folder);
			return CTL_USAGE;
		}
	}
	for (size_t i = 0; i < n_names; i++) {
		const struct set_coll *c = find_named(rs, names[i]);
		if (c == NULL)
			return CTL_USAGE;
		if (add_item(rs, c) == NULL)
			goto oom;
	}
	if (n_names == 0)
		for (size_t i = 0; i < s->n_colls; i++) {
			const struct set_coll *c = &s->colls[i];
			if (rs->only_db != NULL && strcmp(c->database, rs->only_db) != 0)
				continue;
			/* Users and roles are restored only when asked for. */
			if (is_auth(c) && !rs->users_and_roles)
				continue;
			if (add_item(rs, c) == NULL)
				goto oom;
		}
	if (rs->users_and_roles && n_names == 0) {
		bool any = false;
		for (size_t i = 0; i < rs->n; i++)
			any |= is_auth(rs->items[i].c);
		if (!any) {
			ctl_err("--users-and-roles: %s holds no users and roles%s (they are "
				"backed up with [mongodb] users_and_roles = yes)", s->folder,
				rs->only_db ? " of that database" : "");
			return CTL_USAGE;
		}
	}
	for (size_t i = 0; i < rs->n; i++)
		rs->items[i].to_db = rs->map_to_db ? rs->map_to_db : rs->items[i].c->database;
	for (size_t i = 1; i < rs->n; i++)
		if (rs->map_to_db != NULL &&
		    strcmp(rs->items[i].c->database, rs->items[0].c->database) != 0) {
			ctl_err("--to-db takes one database, and these collections are in several "
				"(%s, %s, ...): choose one with --db", rs->items[0].c->database,
				rs->items[i].c->database);
			return CTL_USAGE;
		}
	for (size_t i = 0; i < rs->n; i++) {
		const struct set_coll *c = rs->items[i].c;
		if (strcmp(c->result, "ok") == 0 &&
		    (c->blob == NULL || (c->sha256 != NULL && c->documents >= 0)))
			continue;
		bad++;
		ctl_err("%s: cannot be restored from %s: its backup %s%s%s",
			ctl_clean(c->label, a, sizeof(a)), s->folder,
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

		/* Users and roles name their database inside: merged into
		 * another one they would not be found. */
		if (is_auth(it->c) && rs->map_to_db != NULL) {
			restore_problem(it, "users and roles belong to database %s; restore them "
					"without --to-db", it->c->database);
			it->result = "failed";
			bad++;
			continue;
		}
		if (is_auth(it->c) ||
		    set_valid_collection(it->to_db, it->c->name, why, sizeof(why)))
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

		if (c->blob == NULL) {
			/* a view: its definition only */
		} else if (azure_get_properties(client, c->blob, &props, &err) != 0) {
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
		if (!rs->no_indexes && c->metadata_blob != NULL) {
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
	printf("Usage: " CTL_PROG " [-c CONF] restore SET [--db DB] [--collection [DB.]C]...\n"
	       "         (--to-uri URI | --to-uri-file FILE | --to-dir DIR)\n"
	       "         [--to-db DB] [--users-and-roles] [--drop] [--no-indexes] [--dry-run]\n"
	       "Restores the backup set SET (or 'latest': the newest complete one) into a\n"
	       "MongoDB (documents, then indexes) or into DIR as mongodump's layout\n"
	       "(DIR/DB/COLL.bson + COLL.metadata.json) for mongorestore.  Every database\n"
	       "of the set, or --db's; --collection names one (DB.C where several\n"
	       "databases have a C); --to-db restores one database under another name.\n"
	       "Users and roles only with --users-and-roles.  A target\n"
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

/* Items grouped by their target database, in the set's order otherwise:
 * each group is restored into one database (one directory). */
static void sort_by_target(struct restore *rs)
{
	for (size_t i = 1; i < rs->n; i++)
		for (size_t j = i; j > 0 && strcmp(rs->items[j - 1].to_db, rs->items[j].to_db) > 0;
		     j--) {
			struct restore_item t = rs->items[j];
			rs->items[j] = rs->items[j - 1];
			rs->items[j - 1] = t;
		}
}

/* The one target database, or "several databases". */
static const char *one_target(const struct restore *rs)
{
	for (size_t i = 1; i < rs->n; i++)
		if (strcmp(rs->items[i].to_db, rs->items[0].to_db) != 0)
			return "(several databases)";
	return rs->n ? rs->items[0].to_db : "";
}

/* Runs step on each target database's items in turn, as if they were
 * all there is; the sum of what it returns. */
static size_t each_target(struct restore *rs, size_t (*step)(struct restore *))
{
	struct restore_item *all = rs->items;
	size_t n = rs->n, total = 0;

	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k < n && strcmp(all[k].to_db, all[i].to_db) == 0)
			k++;
		rs->items = all + i;
		rs->n = k - i;
		rs->to_db = all[i].to_db;
		total += step(rs);
		i = k;
	}
	rs->items = all;
	rs->n = n;
	return total;
}

int ctl_restore(const char *conf_path, bool conf_explicit, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "collection", required_argument, NULL, 'C' },
		{ "to-uri", required_argument, NULL, 'u' },
		{ "to-uri-file", required_argument, NULL, 'U' },
		{ "to-dir", required_argument, NULL, 'o' },
		{ "to-db", required_argument, NULL, 'd' },
		{ "db", required_argument, NULL, 'B' },
		{ "users-and-roles", no_argument, NULL, 'R' },
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
		case 'd': rs.map_to_db = optarg; break;
		case 'B': rs.only_db = optarg; break;
		case 'R': rs.users_and_roles = true; break;
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
	if (rs.map_to_db != NULL && !set_valid_database(rs.map_to_db, c, sizeof(c))) {
		r = ctl_usage_error("restore: --to-db: %s", c);
		goto out;
	}
	if (rs.only_db != NULL && !set_valid_database(rs.only_db, c, sizeof(c))) {
		r = ctl_usage_error("restore: --db: %s", c);
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
	r = select_items(&rs, names, n_names);
	if (r != CTL_OK)
		goto out;
	sort_by_target(&rs);
	rs.to_db = one_target(&rs);

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
	bad += each_target(&rs, rs.to_dir ? restore_dir_check : restore_mongo_preflight);
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
	each_target(&rs, rs.to_dir ? restore_dir_run : restore_mongo_run);
	rs.to_db = one_target(&rs);
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
