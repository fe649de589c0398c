/* ctl_restore_dir.c - restore --to-dir: mongodump's directory layout, for
 * the official mongorestore to take from there.
 *
 *   DIR/DB/COLL.bson            the documents, uncompressed, byte for byte
 *   DIR/DB/COLL.metadata.json   the backup's metadata.json, uncompressed
 *
 * (collection names escaped as in blob names, %XX outside [A-Za-z0-9._-],
 * which mongorestore unescapes).  Each file is written as NAME.partial and
 * renamed only when the stream checked out against the manifest; a failed
 * collection leaves no file behind, and no existing file is ever
 * overwritten.  Directories are made 0700 and files 0600: they are a copy
 * of the database.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bson_stream.h"
#include "ctl_restore.h"
#include "path_template.h"
#include "xio.h"

#define WRITE_BUF (1024 * 1024)

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
		errno = d->write_errno ? d->write_errno : ENOMEM;
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

static int names_for(struct restore *rs, struct restore_item *it, char *dir, size_t dirlen,
		     char *meta, size_t metalen)
{
	char escaped[1024];

	if (path_escape_collection(it->c->name, escaped, sizeof(escaped)) != 0 ||
	    (size_t)snprintf(dir, dirlen, "%s/%s", rs->to_dir, rs->to_db) >= dirlen ||
	    (size_t)snprintf(it->path, sizeof(it->path), "%s/%s.bson", dir, escaped) >=
		    sizeof(it->path) ||
	    (size_t)snprintf(meta, metalen, "%s/%s.metadata.json", dir, escaped) >= metalen) {
		restore_problem(it, "the file name would be too long");
		return -1;
	}
	return 0;
}

size_t restore_dir_check(struct restore *rs)
{
	char dir[PATH_MAX], meta[PATH_MAX];
	struct stat sb;
	size_t bad = 0;

	if (strchr(rs->to_db, '/') != NULL || strcmp(rs->to_db, ".") == 0 ||
	    strcmp(rs->to_db, "..") == 0) {
		for (size_t i = 0; i < rs->n; i++)
			restore_problem(&rs->items[i], "database name '%s' cannot be a directory",
					rs->to_db);
		return rs->n;
	}
	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];
		bool was_bad = it->result != NULL;

		if (names_for(rs, it, dir, sizeof(dir), meta, sizeof(meta)) != 0) {
			it->result = "failed";
		} else {
			if (lstat(it->path, &sb) == 0)
				restore_problem(it, "%s exists; restore never overwrites a file",
						it->path);
			if (it->metadata != NULL && lstat(meta, &sb) == 0)
				restore_problem(it, "%s exists; restore never overwrites a file", meta);
			if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
				restore_problem(it, "%s is not a directory", dir);
			if (it->problem[0])
				it->result = "failed";
		}
		if (it->result != NULL && !was_bad)
			bad++;
	}
	return bad;
}

static int make_dirs(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
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

/* Writes len bytes to path via path.partial; never replaces a file. */
static int write_file(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
	char part[PATH_MAX + 16];
	int fd;

	snprintf(part, sizeof(part), "%s.partial", path);
	fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", part, strerror(errno));
		return -1;
	}
	if (xwrite_all(fd, data, len) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", part, strerror(errno));
		close(fd);
		unlink(part);
		return -1;
	}
	if (close(fd) != 0 || link(part, path) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		unlink(part);
		return -1;
	}
	unlink(part);
	return 0;
}

static void restore_one(struct restore *rs, struct restore_item *it)
{
	struct dir_sink d = { .rs = rs, .it = it, .fd = -1 };
	struct azure_error err;
	char dir[PATH_MAX], meta[PATH_MAX], part[PATH_MAX + 16], why[512];
	char sha256[BSON_STREAM_SHA256_HEX], md5[BSON_STREAM_MD5_B64];
	bool linked = false;

	it->result = "failed";
	if (names_for(rs, it, dir, sizeof(dir), meta, sizeof(meta)) != 0)
		return;
	if (make_dirs(dir) != 0) {
		restore_problem(it, "cannot create %s: %s", dir, strerror(errno));
		return;
	}
	snprintf(part, sizeof(part), "%s.partial", it->path);
	if (bson_stream_init(&d.bs, true, write_doc, &d) != 0 ||
	    (d.buf = malloc(WRITE_BUF)) == NULL) {
		restore_problem(it, "out of memory");
		goto out;
	}
	d.fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (d.fd < 0) {
		restore_problem(it, "cannot create %s: %s", part, strerror(errno));
		goto out;
	}
	it->started = true;
	d.t0 = now_ms();
	if (azure_get_blob(rs->st->client, it->c->blob, 0, blob_sink, &d, NULL, &err) != 0) {
		if (restore_interrupted) {
			restore_problem(it, "interrupted");
			it->result = "interrupted";
		} else if (d.write_errno) {
			restore_problem(it, "cannot write %s: %s", part, strerror(d.write_errno));
		} else if (d.bs.stopped) {
			restore_problem(it, "%s", d.bs.error);
		} else {
			restore_problem(it, "downloading %s failed: %s", it->c->blob, err.message);
		}
		goto out;
	}
	if (bson_stream_finish(&d.bs, sha256, md5) != 0) {
		restore_problem(it, "the backup stream is bad: %s", d.bs.error);
		goto out;
	}
	if (flush_buf(&d) != 0) {
		restore_problem(it, "cannot write %s: %s", part, strerror(d.write_errno));
		goto out;
	}
	it->documents = d.bs.documents;
	it->bson_bytes = d.bs.bson_bytes;
	if (!restore_matches_manifest(it, d.bs.documents, d.bs.bson_bytes, d.bs.gzip_bytes,
				      sha256, md5))
		goto out;
	if (fsync(d.fd) != 0 || close(d.fd) != 0) {
		d.fd = -1;
		restore_problem(it, "cannot write %s: %s", part, strerror(errno));
		goto out;
	}
	d.fd = -1;
	/* link(2), not rename(2): a file that appeared meanwhile stays. */
	if (link(part, it->path) != 0) {
		restore_problem(it, "cannot create %s: %s", it->path, strerror(errno));
		goto out;
	}
	linked = true;
	if (it->metadata != NULL &&
	    write_file(meta, it->metadata, it->metadata_len, why, sizeof(why)) != 0) {
		restore_problem(it, "%s", why);
		goto out;
	}
	it->result = "ok";
out:
	if (d.fd >= 0)
		close(d.fd);
	unlink(part);
	/* No half of a collection: without its metadata the .bson goes too. */
	if (linked && strcmp(it->result, "ok") != 0)
		unlink(it->path);
	if (strcmp(it->result, "ok") != 0)
		it->bson_bytes = d.bs.bson_bytes, it->documents = d.bs.documents;
	free(d.buf);
	bson_stream_free(&d.bs);
}

size_t restore_dir_run(struct restore *rs)
{
	size_t bad = 0;

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];

		if (restore_interrupted) {
			restore_problem(it, "interrupted before it started");
			bad++;
		} else {
			restore_one(rs, it);
			if (strcmp(it->result, "ok") != 0)
				bad++;
		}
		restore_print_item(rs, it);
	}
	return bad;
}
