/* ctl_restore_dir.c - restore --to-dir: mongodump's directory layout, for
 * the official mongorestore to take from there.
 *
 *   DIR/DB/COLL.bson            the documents, uncompressed, byte for byte
 *   DIR/DB/COLL.metadata.json   the backup's metadata.json, uncompressed
 *
 * (collection names escaped as in blob names, %XX outside [A-Za-z0-9._-],
 * which mongorestore unescapes).  Each file is written as NAME.partial and
 * linked to NAME only when the stream checked out against the manifest; a
 * failed collection leaves no file behind, and no existing file is ever
 * overwritten.  Directories are made 0700 and files 0600: they are a copy
 * of the database.
 *
 * DIR is the operator's; what lies below it may not be: whoever else can
 * write there could plant a symbolic link named like the database or a
 * file, or a COLL.bson.partial of their own.  So nothing below DIR is
 * reached by path.  DIR is opened once; DB is made and opened inside it
 * with O_NOFOLLOW (a database directory that is a symbolic link is
 * refused); every file is created, linked and removed relative to that
 * directory's descriptor, created with O_EXCL (which never follows a link
 * and never takes a file that is there), and removed only while it is
 * still the very file this process created (same device and inode).
 *
 * What a file may be called is checked before anything is written: every
 * name restore writes, NAME.partial included, must fit NAME_MAX.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bson_stream.h"
#include "ctl_restore_dir.h"
#include "path_template.h"
#include "xio.h"

#define WRITE_BUF (1024 * 1024)
#define PARTIAL ".partial"
#define LONGEST_SUFFIX ".metadata.json" PARTIAL

/* The names of one collection's files inside DIR/DB. */
struct names {
	char bson[NAME_MAX + 1];
	char bson_part[NAME_MAX + 1];
	char meta[NAME_MAX + 1];
	char meta_part[NAME_MAX + 1];
};

struct dir_sink {
	struct restore *rs;
	struct restore_item *it;
	struct bson_stream bs;
	int fd;
	unsigned char *buf;
	size_t len;
	int write_errno;
	long long t0, last_draw;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int flush_buf(struct dir_sink *d)
{
	if (d->len > 0 && xwrite_all(d->fd, d->buf, d->len) != 0) {
		d->write_errno = errno;
		return -1;
	}
	d->len = 0;
	return 0;
}

/* Documents are small: gather them, one write(2) per megabyte. */
static int write_doc(void *ctx, const uint8_t *doc, uint32_t len)
{
	struct dir_sink *d = ctx;

	if (d->len + len > WRITE_BUF && flush_buf(d) != 0)
		return -1;
	if (len > WRITE_BUF) {
		if (xwrite_all(d->fd, doc, len) != 0) {
			d->write_errno = errno;
			return -1;
		}
		return 0;
	}
	memcpy(d->buf + d->len, doc, len);
	d->len += len;
	return 0;
}

static int blob_sink(void *ctx, const void *data, size_t len)
{
	struct dir_sink *d = ctx;

	if (restore_interrupted) {
		errno = EINTR;
		return -1;
	}
	if (bson_stream_feed(&d->bs, data, len) != 0) {
		errno = d->write_errno ? d->write_errno : d->bs.over_limit ? EFBIG : ENOMEM;
		return -1;
	}
	long long t = now_ms();
	if (t - d->last_draw >= 200) {
		d->last_draw = t;
		restore_progress(d->rs, d->it, d->bs.documents, d->bs.bson_bytes,
				 (double)(t - d->t0) / 1000.0);
	}
	return 0;
}

/* The item's file names, and it->path (DIR/DB/COLL.bson, for the report).
 * -1 with a problem when a name restore would write does not fit
 * NAME_MAX. */
static int names_for(struct restore *rs, struct restore_item *it, struct names *nm)
{
	char escaped[1024];
	const char *longest = rs->no_indexes ? ".bson" PARTIAL : LONGEST_SUFFIX;
	size_t n;

	/* mongodump's names: a database's users and roles as they are, a
	 * time-series collection's data as its buckets (the metadata keeps
	 * the collection's name). */
	bool auth = strcmp(it->c->type, "users") == 0 || strcmp(it->c->type, "roles") == 0;
	char data_name[600];
	snprintf(data_name, sizeof(data_name), "%s%s",
		 strcmp(it->c->type, "timeseries") == 0 ? "system.buckets." : "", it->c->name);
	if (auth)
		snprintf(escaped, sizeof(escaped), "%s", it->c->name);
	else if (path_escape_collection(data_name, escaped, sizeof(escaped)) != 0) {
		restore_problem(it, "the collection name is too long for a file name");
		return -1;
	}
	n = strlen(escaped) + strlen(longest);
	if (n > NAME_MAX) {
		restore_problem(it, "the collection name makes a file name of %zu bytes "
				"(%.40s...%s), more than the %d bytes a file name may have (NAME_MAX)",
				n, escaped, longest, NAME_MAX);
		return -1;
	}
	snprintf(nm->bson, sizeof(nm->bson), "%s.bson", escaped);
	snprintf(nm->bson_part, sizeof(nm->bson_part), "%s.bson" PARTIAL, escaped);
	char meta_escaped[1024];
	if (path_escape_collection(it->c->name, meta_escaped, sizeof(meta_escaped)) != 0 || auth)
		snprintf(meta_escaped, sizeof(meta_escaped), "%s", escaped);
	snprintf(nm->meta, sizeof(nm->meta), "%s.metadata.json", meta_escaped);
	snprintf(nm->meta_part, sizeof(nm->meta_part), "%s.metadata.json" PARTIAL, meta_escaped);
	/* For the report only: every file is reached through the directory's
	 * descriptor, so a long DIR limits nothing. */
	if ((size_t)snprintf(it->path, sizeof(it->path), "%s/%s/%s", rs->to_dir, rs->to_db,
			     it->c->blob ? nm->bson : nm->meta) >= sizeof(it->path))
		memcpy(it->path + sizeof(it->path) - 4, "...", 4);
	return 0;
}

/* DIR/DB/name, for messages. */
static const char *where(const struct restore *rs, const char *name, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s%s%s", rs->to_dir, rs->to_db, name ? "/" : "",
			     name ? name : "") >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

/* 1 when name is in dirfd (a link counts, and is not followed), 0 when
 * not, -1 with a problem when that cannot be told. */
static int name_taken(const struct restore *rs, struct restore_item *it, int dirfd,
		      const char *name)
{
	char w[PATH_MAX];
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	restore_problem(it, "cannot look at %s: %s", where(rs, name, w, sizeof(w)),
			strerror(errno));
	return -1;
}

/* Opens DIR/DB without following a link.  -1 with a reason in why (and
 * errno ENOENT when it is simply not there yet). */
static int open_db_dir(const struct restore *rs, int top, char *why, size_t len)
{
	char w[PATH_MAX];
	struct stat sb;
	int fd = openat(top, rs->to_db, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;

	if (fd >= 0)
		return fd;
	/* With O_DIRECTORY too, Linux says ENOTDIR rather than ELOOP for a
	 * link: look at what is there to say which. */
	if (e == ELOOP || (e == ENOTDIR && fstatat(top, rs->to_db, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			   S_ISLNK(sb.st_mode)))
		snprintf(why, len, "%s is a symbolic link; restore writes only into a directory "
			 "of its own, never through a link", where(rs, NULL, w, sizeof(w)));
	else if (e == ENOTDIR)
		snprintf(why, len, "%s is not a directory", where(rs, NULL, w, sizeof(w)));
	else
		snprintf(why, len, "cannot open %s: %s", where(rs, NULL, w, sizeof(w)), strerror(e));
	errno = e;
	return -1;
}

size_t restore_dir_check(struct restore *rs)
{
	struct names nm;
	char why[PATH_MAX + 128] = "";
	int top, db = -1;
	size_t bad = 0;

	/* Nothing there yet is fine: restore makes it.  Anything there is
	 * looked at without following links, as the restore will. */
	top = open(rs->to_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0 && errno != ENOENT)
		snprintf(why, sizeof(why), "cannot open %s: %s", rs->to_dir, strerror(errno));
	else if (top >= 0 && (db = open_db_dir(rs, top, why, sizeof(why))) < 0 && errno == ENOENT)
		why[0] = '\0';
	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];
		bool was_bad = it->result != NULL;

		if (names_for(rs, it, &nm) == 0) {
			if (why[0])
				restore_problem(it, "%s", why);
			if (db >= 0 && name_taken(rs, it, db, nm.bson) == 1)
				restore_problem(it, "%s exists; restore never overwrites a file",
						it->path);
			if (db >= 0 && !rs->no_indexes && name_taken(rs, it, db, nm.meta) == 1) {
				char w[PATH_MAX];
				restore_problem(it, "%s exists; restore never overwrites a file",
						where(rs, nm.meta, w, sizeof(w)));
			}
		}
		if (it->problem[0])
			it->result = "failed";
		if (it->result != NULL && !was_bad)
			bad++;
	}
	/* Read-only descriptors: nothing to lose if close fails. */
	if (db >= 0)
		(void)close(db);
	if (top >= 0)
		(void)close(top);
	return bad;
}

/* mkdir -p for DIR itself, which the operator named (links in it are
 * theirs to make).  -1 with errno. */
static int make_dirs(const char *path)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp)) {
		errno = n == 0 ? ENOENT : ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Removes name from dirfd only while it is the file this process created
 * (ours): someone who can write to the directory may have put a file of
 * their own in its place, and that is not ours to delete. */
static void remove_ours(const struct restore *rs, struct restore_item *it, int dirfd,
			const char *name, const struct stat *ours)
{
	char w[PATH_MAX];
	struct stat now;

	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			restore_problem(it, "cannot look at %s to remove it: %s",
					where(rs, name, w, sizeof(w)), strerror(errno));
		return;
	}
	if (now.st_dev != ours->st_dev || now.st_ino != ours->st_ino) {
		restore_problem(it, "%s is no longer the file restore created; left alone",
				where(rs, name, w, sizeof(w)));
		return;
	}
	if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
		restore_problem(it, "cannot remove %s: %s", where(rs, name, w, sizeof(w)),
				strerror(errno));
}

/* Creates part in dirfd, exclusively: O_EXCL takes no existing file and
 * follows no link (O_NOFOLLOW says so once more).  The descriptor, with
 * *ours its identity, or -1 with a problem. */
static int create_part(const struct restore *rs, struct restore_item *it, int dirfd,
		       const char *part, struct stat *ours)
{
	char w[PATH_MAX];
	int fd = openat(dirfd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		int e = errno;
		restore_problem(it, "cannot create %s: %s%s", where(rs, part, w, sizeof(w)),
				strerror(e), e == EEXIST ? " (not restore's to remove: left by an "
				"earlier restore that was killed, or by someone else)" : "");
		return -1;
	}
	if (fstat(fd, ours) != 0) {
		/* Without its identity it cannot be told from a file planted
		 * in its place later: leave it rather than risk that. */
		restore_problem(it, "cannot look at %s, which it just created (left in place): %s",
				where(rs, part, w, sizeof(w)), strerror(errno));
		(void)close(fd);
		return -1;
	}
	return fd;
}

/* The metadata, as the item holds it, to nm->meta via nm->meta_part; never
 * replaces a file.  0, or -1 with a problem. */
static int write_metadata(const struct restore *rs, struct restore_item *it, int dirfd,
			  const struct names *nm)
{
	char w[PATH_MAX];
	struct stat ours;
	int fd = create_part(rs, it, dirfd, nm->meta_part, &ours), r = -1;

	if (fd < 0)
		return -1;
	if (xwrite_all(fd, it->metadata, it->metadata_len) != 0 || fsync(fd) != 0) {
		restore_problem(it, "cannot write %s: %s", where(rs, nm->meta_part, w, sizeof(w)),
				strerror(errno));
		(void)close(fd);
		goto out;
	}
	if (close(fd) != 0) {
		restore_problem(it, "cannot write %s: %s", where(rs, nm->meta_part, w, sizeof(w)),
				strerror(errno));
		goto out;
	}
	/* link(2), not rename(2): a file that appeared meanwhile stays. */
	if (linkat(dirfd, nm->meta_part, dirfd, nm->meta, 0) != 0) {
		restore_problem(it, "cannot create %s: %s", where(rs, nm->meta, w, sizeof(w)),
				strerror(errno));
		goto out;
	}
	r = 0;
out:
	remove_ours(rs, it, dirfd, nm->meta_part, &ours);
	return r;
}

static void restore_one(struct restore *rs, struct restore_item *it, int dirfd)
{
	struct dir_sink d = { .rs = rs, .it = it, .fd = -1 };
	const struct set_coll *c = it->c;
	struct azure_error err;
	struct names nm;
	struct stat ours;
	char sha256[BSON_STREAM_SHA256_HEX], md5[BSON_STREAM_MD5_B64], w[PATH_MAX];
	bool created = false, linked = false, stream_ready = false;

	it->result = "failed";
	if (names_for(rs, it, &nm) != 0)
		return;
	/* Read now, while its collection is restored, and let go after. */
	if (it->with_metadata && restore_load_metadata(rs, it) != 0)
		return;
	if (c->blob == NULL) {
		/* A view: its definition is all there is, as mongodump writes it. */
		it->started = true;
		if (it->with_metadata && write_metadata(rs, it, dirfd, &nm) == 0)
			it->result = "ok";
		else if (!it->with_metadata)
			restore_problem(it, "a view is its definition: restore it without "
					"--no-indexes");
		goto out;
	}
	if (bson_stream_init(&d.bs, true, write_doc, &d) != 0) {
		restore_problem(it, "out of memory");
		goto out;
	}
	stream_ready = true;
	/* The manifest's counts bound what may be written: a blob that
	 * inflates past them stops there. */
	bson_stream_limit(&d.bs, c->documents, c->bson_bytes, c->gzip_bytes);
	if ((d.buf = malloc(WRITE_BUF)) == NULL) {
		restore_problem(it, "out of memory");
		goto out;
	}
	if ((d.fd = create_part(rs, it, dirfd, nm.bson_part, &ours)) < 0)
		goto out;
	created = true;
	it->started = true;
	d.t0 = now_ms();
	if (azure_get_blob(rs->st->client, c->blob, 0, blob_sink, &d, NULL, &err) != 0) {
		if (restore_interrupted) {
			restore_problem(it, "interrupted");
			it->result = "interrupted";
		} else if (d.write_errno) {
			restore_problem(it, "cannot write %s: %s",
					where(rs, nm.bson_part, w, sizeof(w)), strerror(d.write_errno));
		} else if (d.bs.over_limit) {
			restore_problem(it, "stopped: %s", d.bs.error);
		} else if (d.bs.stopped) {
			restore_problem(it, "%s", d.bs.error);
		} else {
			restore_problem(it, "downloading %s failed: %s", c->blob, err.message);
		}
		goto out;
	}
	if (bson_stream_finish(&d.bs, sha256, md5) != 0) {
		restore_problem(it, "the backup stream is bad: %s", d.bs.error);
		goto out;
	}
	if (flush_buf(&d) != 0) {
		restore_problem(it, "cannot write %s: %s", where(rs, nm.bson_part, w, sizeof(w)),
				strerror(d.write_errno));
		goto out;
	}
	it->documents = d.bs.documents;
	it->bson_bytes = d.bs.bson_bytes;
	if (!restore_matches_manifest(it, d.bs.documents, d.bs.bson_bytes, d.bs.gzip_bytes,
				      sha256, md5))
		goto out;
	if (fsync(d.fd) != 0 || close(d.fd) != 0) {
		d.fd = -1;
		restore_problem(it, "cannot write %s: %s", where(rs, nm.bson_part, w, sizeof(w)),
				strerror(errno));
		goto out;
	}
	d.fd = -1;
	/* link(2), not rename(2): a file that appeared meanwhile stays. */
	if (linkat(dirfd, nm.bson_part, dirfd, nm.bson, 0) != 0) {
		restore_problem(it, "cannot create %s: %s", it->path, strerror(errno));
		goto out;
	}
	linked = true;
	if (it->with_metadata && write_metadata(rs, it, dirfd, &nm) != 0)
		goto out;
	it->result = "ok";
out:
	if (d.fd >= 0)
		(void)close(d.fd);     /* a file being given up */
	if (created)
		remove_ours(rs, it, dirfd, nm.bson_part, &ours);
	/* No half of a collection: without its metadata the .bson goes too. */
	if (linked && strcmp(it->result, "ok") != 0)
		remove_ours(rs, it, dirfd, nm.bson, &ours);
	if (strcmp(it->result, "ok") != 0 && stream_ready)
		it->bson_bytes = d.bs.bson_bytes, it->documents = d.bs.documents;
	restore_free_metadata(it);
	free(d.buf);
	if (stream_ready)
		bson_stream_free(&d.bs);
}

size_t restore_dir_run(struct restore *rs)
{
	char why[PATH_MAX + 128] = "", w[PATH_MAX];
	int top = -1, db = -1;
	size_t bad = 0;

	if (make_dirs(rs->to_dir) != 0)
		snprintf(why, sizeof(why), "cannot create %s: %s", rs->to_dir, strerror(errno));
	else if ((top = open(rs->to_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		snprintf(why, sizeof(why), "cannot open %s: %s", rs->to_dir, strerror(errno));
	else if (mkdirat(top, rs->to_db, 0700) != 0 && errno != EEXIST)
		snprintf(why, sizeof(why), "cannot create %s: %s", where(rs, NULL, w, sizeof(w)),
			 strerror(errno));
	else
		db = open_db_dir(rs, top, why, sizeof(why));

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];

		if (restore_interrupted) {
			restore_problem(it, "interrupted before it started");
			bad++;
		} else if (db < 0) {
			restore_problem(it, "%s", why);
			it->result = "failed";
			bad++;
		} else {
			restore_one(rs, it, db);
			if (strcmp(it->result, "ok") != 0)
				bad++;
		}
		restore_print_item(rs, it);
	}
	if (db >= 0)
		(void)close(db);
	if (top >= 0)
		(void)close(top);
	return bad;
}
