/* ctl_restore_item.c - what the parts of `mongo-azure-backupctl restore`
 * share about one collection being restored (ctl_restore_item.h): its
 * problems, the check of a stream against the manifest, its metadata blob
 * read and let go, the progress and verdict lines on the terminal, and the
 * interrupt flag.  ctl_restore.c (the plan and the report),
 * ctl_restore_mongo.c and ctl_restore_dir.c (the two targets) all call
 * down to it; it calls none of them.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bson_stream.h"
#include "child_status.h"
#include "ctl_restore_item.h"
#include "metadata_json.h"

volatile sig_atomic_t restore_interrupted;

void restore_problem(struct restore_item *it, const char *fmt, ...)
{
	size_t used = strlen(it->problem);
	va_list ap;

	if (used > 0 && used + 2 < sizeof(it->problem)) {
		memcpy(it->problem + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= sizeof(it->problem))
		return;
	va_start(ap, fmt);
	vsnprintf(it->problem + used, sizeof(it->problem) - used, fmt, ap);
	va_end(ap);
}

bool restore_matches_manifest(struct restore_item *it, uint64_t documents,
			      uint64_t bson_bytes, uint64_t gzip_bytes, const char *sha256,
			      const char *md5)
{
	const struct set_coll *c = it->c;
	size_t before = strlen(it->problem);

	if (c->documents >= 0 && (uint64_t)c->documents != documents)
		restore_problem(it, "the blob held %llu documents, the manifest says %lld",
				(unsigned long long)documents, (long long)c->documents);
	if (c->bson_bytes >= 0 && (uint64_t)c->bson_bytes != bson_bytes)
		restore_problem(it, "the blob held %llu BSON bytes, the manifest says %lld",
				(unsigned long long)bson_bytes, (long long)c->bson_bytes);
	if (c->gzip_bytes >= 0 && (uint64_t)c->gzip_bytes != gzip_bytes)
		restore_problem(it, "the blob was %llu bytes, the manifest says %lld",
				(unsigned long long)gzip_bytes, (long long)c->gzip_bytes);
	if (c->sha256 != NULL && sha256 != NULL && strcasecmp(c->sha256, sha256) != 0)
		restore_problem(it, "SHA-256 of the blob is %s, the manifest says %s", sha256,
				c->sha256);
	if (c->md5 != NULL && md5 != NULL && strcmp(c->md5, md5) != 0)
		restore_problem(it, "MD5 of the blob is %s, the manifest says %s", md5, c->md5);
	return strlen(it->problem) == before;
}

/* ---- what goes to the terminal ----------------------------------------- */

void restore_clear_line(struct restore *rs)
{
	if (rs->line_drawn) {
		fputs("\r\033[2K", stdout);
		fflush(stdout);
		rs->line_drawn = false;
	}
}

void restore_progress(struct restore *rs, const struct restore_item *it, uint64_t documents,
		      uint64_t bson_bytes, double seconds)
{
	char a[128], line[512];
	int64_t total = it->c->documents;

	if (rs->tty <= 0)
		return;
	snprintf(line, sizeof(line), "  %-16s restoring ", ctl_clean(it->c->label, a, sizeof(a)));
	if (total > 0) {
		double f = (double)documents / (double)total;
		int fill = f >= 1 ? 20 : (int)(f * 20);
		size_t n = strlen(line);
		line[n++] = '[';
		for (int i = 0; i < 20 && n + 2 < sizeof(line); i++)
			line[n++] = i < fill ? '#' : '-';
		line[n++] = ']';
		line[n] = '\0';
		snprintf(line + n, sizeof(line) - n, " %3d%%  %llu/%lld documents",
			 f >= 1 ? 100 : (int)(f * 100), (unsigned long long)documents,
			 (long long)total);
	} else {
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%llu documents",
			 (unsigned long long)documents);
	}
	if (seconds > 0.5)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "  %.1f MB/s",
			 (double)bson_bytes / 1e6 / seconds);
	if ((int)strlen(line) >= rs->tty)
		line[rs->tty - 1] = '\0';
	fputs("\r\033[2K", stdout);
	fputs(line, stdout);
	fflush(stdout);
	rs->line_drawn = true;
}

static const char *upper(const char *word, char *buf, size_t len)
{
	size_t i;

	for (i = 0; word[i] && i + 1 < len; i++)
		buf[i] = (char)(word[i] >= 'a' && word[i] <= 'z' ? word[i] - 32 : word[i]);
	buf[i] = '\0';
	return buf;
}

void restore_print_item(struct restore *rs, const struct restore_item *it)
{
	char a[128], b[32], c[PATH_MAX + 64], why[2048];
	const char *result = it->result ? it->result : "not started";
	bool ok = strcmp(result, "ok") == 0;

	restore_clear_line(rs);
	printf("  %-16s %-11s ", ctl_clean(it->c->label, a, sizeof(a)),
	       ok ? "ok" : upper(result, b, sizeof(b)));
	if (rs->to_dir != NULL) {
		if (ok)
			printf("%s: %llu document%s, %s", ctl_clean(it->path, c, sizeof(c)),
			       (unsigned long long)it->documents, it->documents == 1 ? "" : "s",
			       ctl_bytes(it->bson_bytes, b, sizeof(b)));
		else if (it->started)
			printf("nothing kept (%llu documents had been read; the partial file "
			       "was removed)", (unsigned long long)it->documents);
		else
			printf("nothing written");
		if (ok && it->with_metadata)
			printf(" + metadata.json");
	} else if (it->started) {
		printf("%llu inserted, %llu failed", (unsigned long long)it->inserted,
		       (unsigned long long)it->failed);
		if (it->uncertain > 0)
			printf(", %llu uncertain (sent, never acknowledged)",
			       (unsigned long long)it->uncertain);
		printf(", %d index%s created", it->indexes, it->indexes == 1 ? "" : "es");
		if (it->dropped)
			printf(" (dropped first)");
	} else {
		printf("nothing written");
	}
	if (it->problem[0])
		printf(": %s", ctl_clean(it->problem, why, sizeof(why)));
	putchar('\n');
	fflush(stdout);
}

int restore_load_metadata(struct restore *rs, struct restore_item *it)
{
	const struct set_coll *c = it->c;
	struct azure_error err;
	char *gz = NULL, why[512];
	size_t gz_len;
	bson_t *meta;
	int n, r = -1;

	restore_free_metadata(it);
	if (c->metadata_blob == NULL) {
		restore_problem(it, "the manifest names no metadata blob (--no-indexes restores "
				"the documents alone)");
		return -1;
	}
	if (blob_fetch_small(rs->st->client, c->metadata_blob, METADATA_JSON_MAX, &gz, &gz_len,
			     &err) != 0) {
		if (err.err_class != NULL && strcmp(err.err_class, ERR_CLASS_NOTFOUND) == 0)
			restore_problem(it, "metadata blob %s does not exist (--no-indexes restores "
					"the documents alone)", c->metadata_blob);
		else
			restore_problem(it, "cannot read metadata blob %s: %s", c->metadata_blob,
					err.message);
		goto out;
	}
	/* The cap holds inflated too: a few KB of gzip can be gigabytes. */
	if (gunzip_buffer(gz, gz_len, METADATA_JSON_MAX, &it->metadata, &it->metadata_len, why,
			  sizeof(why)) != 0) {
		restore_problem(it, "metadata blob %s: %s", c->metadata_blob, why);
		goto out;
	}
	/* Parsed here, not only in check_blobs: the blob may have changed
	 * since. */
	if ((meta = metadata_parse(it->metadata, it->metadata_len, &n, why, sizeof(why))) == NULL) {
		restore_problem(it, "metadata blob %s: %s", c->metadata_blob, why);
		goto out;
	}
	it->n_indexes = metadata_buildable(meta);
	bson_destroy(meta);
	r = 0;
out:
	if (r != 0)
		restore_free_metadata(it);
	free(gz);
	return r;
}

void restore_free_metadata(struct restore_item *it)
{
	free(it->metadata);
	it->metadata = NULL;
	it->metadata_len = 0;
}
