/* check_verify.c - the stream verifier (bson_stream.h) and the judgement
 * of a data blob against its manifest entry (set_verify.h): a good stream
 * in any chunking, a flipped byte anywhere, every truncation, counts off
 * by one, bad BSON; the manifest's counts as limits (a decompression bomb
 * stops within one chunk); metadata.json checks and its inflated cap;
 * manifest parsing, the names a manifest may hold (hostile ones refused)
 * and set names; requests go out with dot segments as they are.
 */
#include "config.h"

#include <arpa/inet.h>
#include <bson/bson.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "backup_set.h"
#include "bson_stream.h"
#include "log.h"
#include "metadata_json.h"
#include "set_verify.h"

/* ---- fixtures ----------------------------------------------------------- */

struct buf {
	uint8_t *data;
	size_t len;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	b->data = realloc(b->data, b->len + len);
	ck_assert_ptr_nonnull(b->data);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* Documents of assorted shapes and sizes, back to back; one near 1 MiB so
 * documents straddle inflate chunks. */
static struct buf make_bson(int n)
{
	struct buf out = { 0 };

	for (int i = 0; i < n; i++) {
		bson_t *doc = bson_new(), sub;
		BSON_APPEND_INT32(doc, "_id", i);
		BSON_APPEND_UTF8(doc, "name", "ćčšđž 日本語");
		BSON_APPEND_DOCUMENT_BEGIN(doc, "nested", &sub);
		BSON_APPEND_DOUBLE(&sub, "x", i * 1.5);
		BSON_APPEND_DATE_TIME(&sub, "before_1970", -14182940000LL);
		bson_append_document_end(doc, &sub);
		if (i == n / 2) {
			size_t big = 1000 * 1000;
			uint8_t *blob = malloc(big);
			for (size_t j = 0; j < big; j++)
				blob[j] = (uint8_t)(j * 7919 >> 3);
			BSON_APPEND_BINARY(doc, "big", BSON_SUBTYPE_BINARY, blob, (uint32_t)big);
			free(blob);
		}
		buf_add(&out, bson_get_data(doc), doc->len);
		bson_destroy(doc);
	}
	return out;
}

static struct buf gzip(const void *data, size_t len)
{
	struct buf out = { 0 };
	z_stream z;

	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	out.data = malloc(deflateBound(&z, len) + 64);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out.data;
	z.avail_out = (uInt)(deflateBound(&z, len) + 64);
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	out.len = z.total_out;
	deflateEnd(&z);
	return out;
}

static void digests(const struct buf *b, char sha[65], char md5[25])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n;

	EVP_Digest(b->data, b->len, md, &n, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < n; i++)
		snprintf(sha + 2 * i, 3, "%02x", md[i]);
	EVP_Digest(b->data, b->len, md, &n, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)md5, md, (int)n);
}

struct seen {
	struct buf docs;
	uint64_t calls;
};

static int collect(void *ctx, const uint8_t *doc, uint32_t len)
{
	struct seen *s = ctx;

	buf_add(&s->docs, doc, len);
	s->calls++;
	return 0;
}

/* Feeds gz in chunks of `chunk` bytes; 0 when the stream decoded whole. */
static int decode(const struct buf *gz, size_t chunk, struct bson_stream *bs, struct seen *seen,
		  char sha[65], char md5[25])
{
	ck_assert_int_eq(bson_stream_init(bs, true, seen ? collect : NULL, seen), 0);
	for (size_t off = 0; off < gz->len; off += chunk) {
		size_t n = gz->len - off < chunk ? gz->len - off : chunk;
		ck_assert_int_eq(bson_stream_feed(bs, gz->data + off, n), 0);
	}
	return bson_stream_finish(bs, sha, md5);
}

/* A manifest entry that matches gz (holding n documents of raw). */
static struct set_coll entry_for(const struct buf *raw, const struct buf *gz, int n,
				 char sha[65], char md5[25])
{
	struct set_coll c = { 0 };

	digests(gz, sha, md5);
	c.name = "users";
	c.result = "ok";
	c.blob = "backups/2026-11-27/tralivali_users.bson.gz";
	c.sha256 = sha;
	c.md5 = md5;
	c.documents = n;
	c.bson_bytes = (int64_t)raw->len;
	c.gzip_bytes = (int64_t)gz->len;
	return c;
}

static void judge(const struct set_coll *c, const struct buf *gz, const char *content_md5,
		  struct coll_verdict *v)
{
	struct bson_stream bs;

	set_verify_begin(c, v);
	ck_assert_int_eq(bson_stream_init(&bs, true, NULL, NULL), 0);
	bson_stream_feed(&bs, gz->data, gz->len);
	set_verify_judge(c, &bs, content_md5, v);
	bson_stream_free(&bs);
}

/* ---- the stream --------------------------------------------------------- */

START_TEST(good_stream_any_chunking)
{
	static const size_t chunks[] = { 1, 7, 4096, 65536, 1 << 30 };
	struct buf raw = make_bson(300), gz = gzip(raw.data, raw.len);
	char want_sha[65], want_md5[25];

	digests(&gz, want_sha, want_md5);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct bson_stream bs;
		struct seen seen = { { 0 }, 0 };
		char sha[65], md5[25];

		/* One byte at a time over a 1 MB stream is slow: skip it there. */
		if (chunks[i] == 1 && gz.len > 200000) {
			struct buf small = make_bson(20);
			struct buf sgz = gzip(small.data, small.len);
			char ssha[65], smd5[25];
			digests(&sgz, ssha, smd5);
			ck_assert_int_eq(decode(&sgz, 1, &bs, &seen, sha, md5), 0);
			ck_assert_uint_eq(bs.documents, 20);
			ck_assert_uint_eq(seen.docs.len, small.len);
			ck_assert(memcmp(seen.docs.data, small.data, small.len) == 0);
			ck_assert_str_eq(sha, ssha);
			ck_assert_str_eq(md5, smd5);
			bson_stream_free(&bs);
			free(seen.docs.data);
			free(small.data);
			free(sgz.data);
			continue;
		}
		ck_assert_msg(decode(&gz, chunks[i], &bs, &seen, sha, md5) == 0,
			      "chunk %zu: %s", chunks[i], bs.error);
		ck_assert_uint_eq(bs.documents, 300);
		ck_assert_uint_eq(seen.calls, 300);
		ck_assert_uint_eq(bs.bson_bytes, raw.len);
		ck_assert_uint_eq(bs.gzip_bytes, gz.len);
		ck_assert_uint_eq(seen.docs.len, raw.len);
		ck_assert_msg(memcmp(seen.docs.data, raw.data, raw.len) == 0,
			      "documents are not byte-identical");
		ck_assert_str_eq(sha, want_sha);
		ck_assert_str_eq(md5, want_md5);
		bson_stream_free(&bs);
		free(seen.docs.data);
	}
	free(raw.data);
	free(gz.data);
}
END_TEST

START_TEST(empty_collection_and_empty_input)
{
	struct buf gz = gzip("", 0), none = { 0 };
	struct bson_stream bs;

	ck_assert_int_eq(decode(&gz, 4096, &bs, NULL, NULL, NULL), 0);
	ck_assert_uint_eq(bs.documents, 0);
	bson_stream_free(&bs);
	ck_assert_int_eq(bson_stream_init(&bs, false, NULL, NULL), 0);
	ck_assert_int_eq(bson_stream_finish(&bs, NULL, NULL), -1);
	ck_assert_ptr_nonnull(strstr(bs.error, "empty"));
	bson_stream_free(&bs);
	free(gz.data);
	(void)none;
}
END_TEST

START_TEST(multi_member_gzip_and_trailing_garbage)
{
	struct buf a = make_bson(3), b = make_bson(4);
	struct buf ga = gzip(a.data, a.len), gb = gzip(b.data, b.len), both = { 0 };
	struct bson_stream bs;

	buf_add(&both, ga.data, ga.len);
	buf_add(&both, gb.data, gb.len);
	ck_assert_int_eq(decode(&both, 1000, &bs, NULL, NULL, NULL), 0);
	ck_assert_uint_eq(bs.documents, 7);
	bson_stream_free(&bs);

	buf_add(&both, "junk", 4);
	ck_assert_int_eq(decode(&both, 1000, &bs, NULL, NULL, NULL), -1);
	ck_assert(bs.data_error);
	bson_stream_free(&bs);
	free(a.data);
	free(b.data);
	free(ga.data);
	free(gb.data);
	free(both.data);
}
END_TEST

/* Every flip of the compressed body is caught by the stream itself (a
 * data error or the CRC); a flip anywhere (the gzip header's time and OS
 * bytes too) is caught by the judgement through the hashes. */
START_TEST(flipped_byte_anywhere)
{
	struct buf raw = make_bson(40), gz = gzip(raw.data, raw.len);
	char sha[65], md5[25];
	struct set_coll c = entry_for(&raw, &gz, 40, sha, md5);
	size_t step = gz.len / 97 + 1;

	for (size_t pos = 0; pos < gz.len; pos += (pos < 64 || pos + 64 > gz.len) ? 1 : step) {
		struct coll_verdict v;
		struct bson_stream bs;

		gz.data[pos] ^= 0x20;
		judge(&c, &gz, NULL, &v);
		ck_assert_msg(strcmp(v.result, "corrupt") == 0, "flip at %zu of %zu: %s", pos,
			      gz.len, v.result);
		ck_assert_msg(strstr(v.problem, "SHA-256") != NULL, "flip at %zu: %s", pos,
			      v.problem);
		if (pos >= 10) {
			ck_assert_msg(decode(&gz, 8192, &bs, NULL, NULL, NULL) != 0,
				      "flip at %zu of %zu went unnoticed by the stream", pos,
				      gz.len);
			bson_stream_free(&bs);
		}
		gz.data[pos] ^= 0x20;
	}
	free(raw.data);
	free(gz.data);
}
END_TEST

START_TEST(truncated_anywhere)
{
	struct buf raw = make_bson(40), gz = gzip(raw.data, raw.len);
	size_t full = gz.len;
	size_t step = full / 211 + 1;

	for (size_t cut = 0; cut < full; cut += cut + 16 > full ? 1 : step) {
		struct bson_stream bs;

		gz.len = cut;
		ck_assert_msg(decode(&gz, 4096, &bs, NULL, NULL, NULL) == -1,
			      "cut at %zu of %zu not noticed", cut, full);
		ck_assert_msg(strstr(bs.error, cut == 0 ? "empty" : "truncated") != NULL,
			      "cut at %zu: %s", cut, bs.error);
		bson_stream_free(&bs);
	}
	gz.len = full;
	free(raw.data);
	free(gz.data);
}
END_TEST

/* A whole gzip around a cut BSON stream: the last document is partial. */
START_TEST(truncated_last_document)
{
	struct buf raw = make_bson(5);
	struct buf gz = gzip(raw.data, raw.len - 3);
	struct bson_stream bs;

	ck_assert_int_eq(decode(&gz, 4096, &bs, NULL, NULL, NULL), -1);
	ck_assert_uint_eq(bs.documents, 4);
	ck_assert_ptr_nonnull(strstr(bs.error, "inside document 5"));
	bson_stream_free(&bs);
	free(raw.data);
	free(gz.data);
}
END_TEST

START_TEST(count_off_by_one)
{
	struct buf raw = make_bson(10), gz = gzip(raw.data, raw.len);
	char sha[65], md5[25];
	struct set_coll c = entry_for(&raw, &gz, 10, sha, md5);
	struct coll_verdict v;

	judge(&c, &gz, md5, &v);
	ck_assert_msg(strcmp(v.result, "ok") == 0, "%s: %s", v.result, v.problem);
	ck_assert_uint_eq(v.documents, 10);

	c.documents = 11;
	judge(&c, &gz, md5, &v);
	ck_assert_str_eq(v.result, "corrupt");
	ck_assert_ptr_nonnull(strstr(v.problem, "holds 10 documents, the manifest says 11"));

	c.documents = 9;
	judge(&c, &gz, md5, &v);
	ck_assert_str_eq(v.result, "corrupt");
	ck_assert_ptr_nonnull(strstr(v.problem, "the manifest says 9"));

	c.documents = 10;
	c.bson_bytes++;
	judge(&c, &gz, md5, &v);
	ck_assert_str_eq(v.result, "corrupt");
	ck_assert_ptr_nonnull(strstr(v.problem, "BSON bytes"));
	c.bson_bytes--;

	/* The blob's Content-MD5 property disagreeing with its bytes. */
	judge(&c, &gz, "1B2M2Y8AsgTpgAmY7PhCfg==", &v);
	ck_assert_str_eq(v.result, "corrupt");
	ck_assert_ptr_nonnull(strstr(v.problem, "Content-MD5"));

	/* An entry the run never finished: nothing to compare with. */
	c.result = "failed";
	c.error = "collection 'users' does not exist";
	judge(&c, &gz, md5, &v);
	ck_assert_str_eq(v.result, "incomplete");
	ck_assert_ptr_nonnull(strstr(v.problem, "does not exist"));
	free(raw.data);
	free(gz.data);
}
END_TEST

static void expect_bad_bson(const uint8_t *doc, size_t len, const char *why)
{
	struct buf raw = make_bson(2), gz;
	struct bson_stream bs;
	struct seen seen = { { 0 }, 0 };

	buf_add(&raw, doc, len);
	gz = gzip(raw.data, raw.len);
	ck_assert_int_eq(decode(&gz, 4096, &bs, &seen, NULL, NULL), -1);
	ck_assert(bs.data_error);
	ck_assert_uint_eq(seen.calls, 2);      /* the bad one is never handed out */
	ck_assert_msg(strstr(bs.error, why) != NULL, "%s", bs.error);
	ck_assert_ptr_nonnull(strstr(bs.error, "document 3"));
	bson_stream_free(&bs);
	free(seen.docs.data);
	free(raw.data);
	free(gz.data);
}

START_TEST(bad_bson)
{
	/* {"s": "abc"} with the string's length saying 40. */
	static const uint8_t bad_string[] = {
		0x12, 0, 0, 0, 0x02, 's', 0, 40, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0 };
	/* Length field below the minimum, and one beyond 16 MiB. */
	static const uint8_t tiny[] = { 4, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t huge[] = { 0, 0, 0, 0x7f, 0, 0, 0, 0 };
	/* Right length, no terminating NUL. */
	static const uint8_t no_nul[] = { 8, 0, 0, 0, 0x0a, 'x', 0, 1 };
	/* An element of an unknown type (0x55). */
	static const uint8_t bad_type[] = { 9, 0, 0, 0, 0x55, 'x', 0, 0, 0 };
	uint8_t fixed[sizeof(bad_string)];

	expect_bad_bson(bad_string, sizeof(bad_string), "not valid BSON");
	expect_bad_bson(tiny, sizeof(tiny), "claims a length of 4");
	expect_bad_bson(huge, sizeof(huge), "claims a length");
	expect_bad_bson(no_nul, sizeof(no_nul), "NUL");
	expect_bad_bson(bad_type, sizeof(bad_type), "not valid BSON");

	/* Sanity: with the right string length the same document is fine. */
	memcpy(fixed, bad_string, sizeof(fixed));
	fixed[7] = 4;
	fixed[0] = 0x10;
	{
		struct buf gz = gzip(fixed, 0x10);
		struct bson_stream bs;
		ck_assert_int_eq(decode(&gz, 3, &bs, NULL, NULL, NULL), 0);
		ck_assert_uint_eq(bs.documents, 1);
		bson_stream_free(&bs);
		free(gz.data);
	}
}
END_TEST

START_TEST(gunzip_whole_buffer)
{
	const char *text = "{\"indexes\":[]}";
	struct buf gz = gzip(text, strlen(text));
	char *out, err[256];
	size_t len;

	ck_assert_int_eq(gunzip_buffer(gz.data, gz.len, 1024, &out, &len, err, sizeof(err)), 0);
	ck_assert_str_eq(out, text);
	free(out);
	ck_assert_int_eq(gunzip_buffer(gz.data, gz.len, 5, &out, &len, err, sizeof(err)), -1);
	ck_assert_int_eq(gunzip_buffer(gz.data, gz.len - 1, 1024, &out, &len, err, sizeof(err)),
			 -1);
	ck_assert_int_eq(gunzip_buffer(gz.data, 0, 1024, &out, &len, err, sizeof(err)), -1);
	free(gz.data);
}
END_TEST

/* ---- metadata, manifests, names ----------------------------------------- */

START_TEST(metadata_shape)
{
	static const char good[] =
		"{\"indexes\":[{\"v\":{\"$numberInt\":\"2\"},\"key\":{\"_id\":{\"$numberInt\":"
		"\"1\"}},\"name\":\"_id_\"},{\"v\":{\"$numberInt\":\"2\"},\"key\":{\"email\":"
		"{\"$numberInt\":\"1\"}},\"name\":\"email_1\",\"unique\":true}],\"uuid\":"
		"\"286a368ba6525d51a69536e438ad285b\",\"collectionName\":\"users\",\"type\":"
		"\"collection\"}";
	char err[256];
	int n;
	bson_t *doc;

	ck_assert_int_eq(metadata_check(good, strlen(good), err, sizeof(err)), 2);
	doc = metadata_parse(good, strlen(good), &n, err, sizeof(err));
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(metadata_buildable(doc), 1);
	bson_destroy(doc);
	ck_assert_int_eq(metadata_check("{\"type\":\"collection\"}", 21, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "indexes"));
	ck_assert_int_eq(metadata_check("[1,2]", 5, err, sizeof(err)), -1);
	ck_assert_int_eq(metadata_check("{\"indexes\":[{\"name\":\"x\"}]}", 26, err, sizeof(err)),
			 -1);
	ck_assert_int_eq(metadata_check("{\"indexes\":", 11, err, sizeof(err)), -1);
}
END_TEST

START_TEST(manifest_parse)
{
	static const char json[] =
		"{\"format\":1,\"run_id\":\"r1\",\"database\":\"tralivali\",\"set\":"
		"\"backups/2026-11-27/\",\"started\":\"2026-11-27T03:00:00Z\",\"finished\":"
		"\"2026-11-27T03:04:11Z\",\"complete\":false,\"collections\":["
		"{\"name\":\"users\",\"result\":\"ok\",\"blob\":\"backups/2026-11-27/tralivali_users"
		".bson.gz\",\"metadata_blob\":\"tralivali_users.metadata.json.gz\",\"documents\":"
		"300000,\"bson_bytes\":5000000000,\"gzip_bytes\":123,\"sha256\":\"ab\",\"md5\":"
		"\"cd\"},{\"name\":\"files\",\"result\":\"failed\",\"blob\":\"backups/2026-11-27/"
		"tralivali_files.bson.gz\",\"error\":\"gone\"}]}";
	struct set_list l = { calloc(1, sizeof(struct backup_set)), 1 };
	struct backup_set *sp = l.sets;
	char err[256];

	ck_assert_ptr_nonnull(sp);
	sp->folder = strdup("backups/2026-11-27/");

	ck_assert_msg(set_parse_manifest(sp, json, strlen(json), err, sizeof(err)) == 0, "%s", err);
	ck_assert(sp->loaded && !sp->complete);
	ck_assert_uint_eq(sp->n_colls, 2);
	ck_assert_str_eq(sp->colls[0].metadata_blob,
			 "backups/2026-11-27/tralivali_users.metadata.json.gz");
	ck_assert_int_eq(sp->colls[0].bson_bytes, 5000000000LL);
	ck_assert_int_eq(sp->colls[1].documents, -1);
	ck_assert_str_eq(sp->colls[1].error, "gone");
	ck_assert_uint_eq(set_count_ok(sp), 1);
	/* Format 1: every entry of the set's one database, a collection. */
	ck_assert_str_eq(sp->colls[1].name, "files");
	ck_assert_str_eq(sp->colls[1].database, sp->database);
	ck_assert_str_eq(sp->colls[1].type, "collection");
	ck_assert_str_eq(sp->colls[1].label, "files");
	ck_assert_int_eq(set_parse_manifest(sp, "{\"collections\":[{\"result\":\"ok\"}],"
					    "\"database\":\"d\"}", 48, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "name"));
	ck_assert_int_eq(set_parse_manifest(sp, "[]", 2, err, sizeof(err)), -1);
	sets_free(&l);
}
END_TEST

START_TEST(set_names)
{
	struct backup_set sets[3] = {
		{ .folder = "backups/2026-11-27/", .loaded = true, .complete = false },
		{ .folder = "backups/2026-11-26/", .loaded = true, .complete = true },
		{ .folder = "other/2026-11-26/", .loaded = true, .complete = true },
	};
	struct set_list l = { sets, 3 };
	char err[512];

	ck_assert_int_eq(sets_resolve(&l, "latest", false, err, sizeof(err)), 0);
	ck_assert_int_eq(sets_resolve(&l, "latest", true, err, sizeof(err)), 1);
	ck_assert_int_eq(sets_resolve(&l, "2026-11-27", false, err, sizeof(err)), 0);
	ck_assert_int_eq(sets_resolve(&l, "backups/2026-11-26", false, err, sizeof(err)), 1);
	ck_assert_int_eq(sets_resolve(&l, "other/2026-11-26/", false, err, sizeof(err)), 2);
	ck_assert_int_eq(sets_resolve(&l, "2026-11-26", false, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "names 2 sets"));
	ck_assert_int_eq(sets_resolve(&l, "11-27", false, err, sizeof(err)), -1);
	ck_assert_int_eq(sets_resolve(&l, "other", false, err, sizeof(err)), 2);
	ck_assert_int_eq(sets_resolve(&l, "backups", false, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "names 2 sets: backups/2026-11-27/ backups/2026-11-26/"));
	ck_assert_int_eq(sets_resolve(&l, "2026-11-25", false, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no backup set"));
	ck_assert_int_eq(set_parse_utc("2026-11-27T03:00:00Z"), 1795748400);
	ck_assert_int_eq(set_parse_utc("yesterday"), -1);
}
END_TEST

/* Runs started in one second: the later set has the higher number. */
START_TEST(same_second_sets_in_order)
{
	static const char *const want[] = {
		"backups/2026-11-27.10/", "backups/2026-11-27.9/", "backups/2026-11-27.2/",
		"backups/2026-11-27/", "backups/2026-11-26.3/",
	};
	struct backup_set sets[5] = {
		{ .folder = "backups/2026-11-27/", .started = "2026-11-27T03:00:00Z" },
		{ .folder = "backups/2026-11-27.9/", .started = "2026-11-27T03:00:00Z" },
		{ .folder = "backups/2026-11-26.3/", .started = "2026-11-26T03:00:00Z" },
		{ .folder = "backups/2026-11-27.10/", .started = "2026-11-27T03:00:00Z" },
		{ .folder = "backups/2026-11-27.2/", .started = "2026-11-27T03:00:00Z" },
	};
	struct set_list l = { sets, 5 };
	char err[256];

	for (size_t i = 0; i < 5; i++) {
		sets[i].loaded = true;
		sets[i].complete = true;
		sets[i].manifest_modified = -1;
	}
	sets_sort(&l);
	for (size_t i = 0; i < 5; i++)
		ck_assert_str_eq(sets[i].folder, want[i]);
	ck_assert_int_eq(sets_resolve(&l, "latest", true, err, sizeof(err)), 0);
	ck_assert_int_eq(sets_resolve(&l, "2026-11-27", true, err, sizeof(err)), 3);
	ck_assert_int_eq(sets_resolve(&l, "2026-11-27.2", true, err, sizeof(err)), 2);
}
END_TEST

/* ---- the manifest's counts as limits ------------------------------------ */

/* Feeds gz in chunks with limits; the feed's first failure, 0 if none. */
static int feed_limited(const struct buf *gz, size_t chunk, int64_t docs, int64_t bson,
			int64_t gzb, struct bson_stream *bs, struct seen *seen)
{
	ck_assert_int_eq(bson_stream_init(bs, true, seen ? collect : NULL, seen), 0);
	bson_stream_limit(bs, docs, bson, gzb);
	for (size_t off = 0; off < gz->len; off += chunk) {
		size_t n = gz->len - off < chunk ? gz->len - off : chunk;
		if (bson_stream_feed(bs, gz->data + off, n) != 0)
			return -1;
	}
	return 0;
}

START_TEST(limits_from_the_manifest)
{
	struct buf raw = make_bson(10), gz = gzip(raw.data, raw.len);
	struct bson_stream bs;
	struct seen seen = { { 0 }, 0 };
	uint64_t three = 0;

	/* The bytes of the first three documents. */
	for (int i = 0; i < 3; i++) {
		uint32_t n;
		memcpy(&n, raw.data + three, 4);
		three += n;
	}

	/* Exactly what the manifest says: whole. */
	ck_assert_int_eq(feed_limited(&gz, 4096, 10, (int64_t)raw.len, (int64_t)gz.len, &bs,
				      NULL), 0);
	ck_assert_int_eq(bson_stream_finish(&bs, NULL, NULL), 0);
	ck_assert(!bs.over_limit);
	bson_stream_free(&bs);

	/* One document fewer recorded: document 4 is never handed out. */
	ck_assert_int_eq(feed_limited(&gz, 4096, 3, -1, -1, &bs, &seen), -1);
	ck_assert(bs.over_limit && bs.data_error);
	ck_assert_uint_eq(bs.documents, 3);
	ck_assert_uint_eq(seen.calls, 3);
	ck_assert_msg(strstr(bs.error, "more than the 3 documents") != NULL &&
		      strstr(bs.error, "document 4") != NULL, "%s", bs.error);
	ck_assert_int_eq(bson_stream_feed(&bs, gz.data, 1), -1);      /* stays stopped */
	ck_assert_int_eq(bson_stream_finish(&bs, NULL, NULL), -1);
	bson_stream_free(&bs);
	free(seen.docs.data);

	/* One BSON byte fewer than three documents: the third is refused on
	 * its length field alone. */
	ck_assert_int_eq(feed_limited(&gz, 4096, -1, (int64_t)three - 1, -1, &bs, NULL), -1);
	ck_assert(bs.over_limit);
	ck_assert_uint_eq(bs.documents, 2);
	ck_assert_msg(strstr(bs.error, "BSON bytes") != NULL &&
		      strstr(bs.error, "document 3") != NULL, "%s", bs.error);
	bson_stream_free(&bs);

	/* A blob longer than recorded. */
	ck_assert_int_eq(feed_limited(&gz, 100, -1, -1, (int64_t)gz.len - 1, &bs, NULL), -1);
	ck_assert(bs.over_limit);
	ck_assert_ptr_nonnull(strstr(bs.error, "goes on past"));
	bson_stream_free(&bs);

	/* An empty collection recorded: the first document is too many. */
	ck_assert_int_eq(feed_limited(&gz, 4096, 0, 0, -1, &bs, NULL), -1);
	ck_assert_uint_eq(bs.documents, 0);
	bson_stream_free(&bs);
	free(raw.data);
	free(gz.data);
}
END_TEST

/* 2000 documents of 1 MB of zeros, as gzip members of about 1 KB each:
 * 2 GB behind 2 MB.  With the manifest saying 1 document of 100 bytes the
 * decoder stops in the first chunk it is given, having handed out
 * nothing and buffered one inflate window. */
START_TEST(decompression_bomb_stops_in_one_chunk)
{
	size_t big = 1000 * 1000;
	uint8_t *zeros = calloc(1, big);
	bson_t *doc = bson_new();
	struct buf member, bomb = { 0 };
	struct bson_stream bs;
	struct seen seen = { { 0 }, 0 };

	ck_assert_ptr_nonnull(zeros);
	BSON_APPEND_INT32(doc, "_id", 1);
	BSON_APPEND_BINARY(doc, "pad", BSON_SUBTYPE_BINARY, zeros, (uint32_t)big);
	member = gzip(bson_get_data(doc), doc->len);
	for (int i = 0; i < 2000; i++)
		buf_add(&bomb, member.data, member.len);

	ck_assert_int_eq(feed_limited(&bomb, 16384, 1, 100, (int64_t)bomb.len, &bs, &seen), -1);
	ck_assert(bs.over_limit);
	ck_assert_uint_eq(seen.calls, 0);
	ck_assert_uint_le(bs.gzip_bytes, 16384);
	ck_assert_uint_le(bs.cap, 2 * 256 * 1024);
	ck_assert_msg(strstr(bs.error, "100 BSON bytes") != NULL, "%s", bs.error);
	bson_stream_free(&bs);

	/* Recorded as 3 documents of their true size: the fourth stops it. */
	ck_assert_int_eq(feed_limited(&bomb, 16384, 3, 3 * (int64_t)doc->len, (int64_t)bomb.len,
				      &bs, &seen), -1);
	ck_assert_uint_eq(seen.calls, 3);
	ck_assert_uint_eq(bs.documents, 3);
	ck_assert_msg(strstr(bs.error, "document 4") != NULL, "%s", bs.error);
	ck_assert_uint_le(bs.gzip_bytes, 5 * member.len + 16384);
	bson_stream_free(&bs);
	free(seen.docs.data);
	bson_destroy(doc);
	free(zeros);
	free(member.data);
	free(bomb.data);
}
END_TEST

/* A 61 KB metadata blob that inflates to 60 MiB is refused at the cap
 * without holding more than the cap. */
START_TEST(metadata_inflated_cap)
{
	size_t pad = 60u << 20;
	char *json = malloc(pad + 64), *out, err[256];
	size_t len, n;
	struct buf gz;

	ck_assert_ptr_nonnull(json);
	n = (size_t)sprintf(json, "{\"indexes\":[],\"pad\":\"");
	memset(json + n, 'a', pad);
	n += pad;
	n += (size_t)sprintf(json + n, "\"}");
	gz = gzip(json, n);
	free(json);
	ck_assert_uint_lt(gz.len, 100 * 1024);
	ck_assert_int_eq(gunzip_buffer(gz.data, gz.len, METADATA_JSON_MAX, &out, &len, err,
				       sizeof(err)), -1);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err, "more than 16777216 bytes") != NULL, "%s", err);
	free(gz.data);
}
END_TEST

/* ---- names in a manifest ------------------------------------------------ */

START_TEST(database_and_collection_names)
{
	static const char *const bad_db[] = {
		"", "a b", "a\nb", "a\\b", "a/b", "a.b", "..", "a\"b", "a$b", "a*b", "a:b",
		"a\tb", "a\x7f", "0123456789012345678901234567890123456789012345678901234567890123",
	};
	char why[256], name[400];

	ck_assert(set_valid_database("tralivali", why, sizeof(why)));
	ck_assert(set_valid_database("tralivali_restored-2", why, sizeof(why)));
	ck_assert(set_valid_database("база", why, sizeof(why)));
	ck_assert(set_valid_database("012345678901234567890123456789012345678901234567890123456789012",
				     why, sizeof(why)));
	for (size_t i = 0; i < sizeof(bad_db) / sizeof(bad_db[0]); i++)
		ck_assert_msg(!set_valid_database(bad_db[i], why, sizeof(why)), "'%s' passed",
			      bad_db[i]);
	ck_assert(!set_valid_database("", why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "empty"));

	ck_assert(set_valid_collection("tralivali", "users", why, sizeof(why)));
	ck_assert(set_valid_collection("tralivali", "a.b c\n/..", why, sizeof(why)));
	ck_assert(set_valid_collection("tralivali", "systemjs", why, sizeof(why)));
	ck_assert(!set_valid_collection("tralivali", "", why, sizeof(why)));
	ck_assert(!set_valid_collection("tralivali", "a$b", why, sizeof(why)));
	/* mongodump keeps system.js, and admin's system collections. */
	ck_assert(set_valid_collection("tralivali", "system.js", why, sizeof(why)));
	ck_assert(set_valid_collection("admin", "system.users", why, sizeof(why)));
	ck_assert(!set_valid_collection("tralivali", "system.views", why, sizeof(why)));
	memset(name, 'c', 300);
	name[300] = '\0';
	ck_assert(!set_valid_collection("d", name, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "255-byte namespace"));
	name[253] = '\0';                     /* "d." + 253 = 255 */
	ck_assert(set_valid_collection("d", name, why, sizeof(why)));
	ck_assert(!set_valid_collection("dd", name, why, sizeof(why)));
}
END_TEST

START_TEST(blob_names_stay_in_the_set)
{
	static const char *const bad[] = {
		"../backups/backups/2026-12-04/tralivali_users.bson.gz",
		"backups/2026-11-27/../2026-12-04/tralivali_users.bson.gz",
		"backups/2026-11-27/../../other/x",
		"backups/2026-11-27/./x",
		"backups/2026-11-27//x",
		"backups/2026-11-27/x/..",
		"backups/2026-11-28/tralivali_users.bson.gz",
		"backups/2026-11-2/x",
		"backups/2026-11-27/",
		"backups/2026-11-27/a\\b",
		"backups/2026-11-27/a\nb",
	};
	char why[256];

	ck_assert(set_blob_in_folder("backups/2026-11-27/",
				     "backups/2026-11-27/tralivali_users.bson.gz", why, sizeof(why)));
	ck_assert(set_blob_in_folder("backups/2026-11-27/", "backups/2026-11-27/a/b..c/.d",
				     why, sizeof(why)));
	ck_assert(set_blob_in_folder("", "tralivali_users.bson.gz", why, sizeof(why)));
	ck_assert(!set_blob_in_folder("", "../x", why, sizeof(why)));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!set_blob_in_folder("backups/2026-11-27/", bad[i], why, sizeof(why)),
			      "'%s' passed", bad[i]);
	ck_assert(!set_blob_in_folder("backups/2026-11-27/", bad[0], why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "not inside"));
	ck_assert(!set_blob_in_folder("backups/2026-11-27/", bad[1], why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "'..' segment"));

	ck_assert(set_valid_folder(""));
	ck_assert(set_valid_folder("backups/2026-11-27/"));
	ck_assert(!set_valid_folder("backups/../"));
	ck_assert(!set_valid_folder("backups//2026/"));
	ck_assert(!set_valid_folder("./"));
	ck_assert(!set_valid_folder("backups"));
}
END_TEST

/* A manifest with one entry, with its fields spliced in. */
static int parse_one(const char *database, const char *entry, char *err, size_t errlen)
{
	struct set_list l = { calloc(1, sizeof(struct backup_set)), 1 };
	char *json;
	int r;

	ck_assert_ptr_nonnull(l.sets);
	l.sets[0].folder = strdup("backups/2026-11-27/");
	ck_assert_int_ge(asprintf(&json, "{\"database\":%s,\"complete\":true,\"collections\":[%s]}",
				  database, entry), 0);
	r = set_parse_manifest(&l.sets[0], json, strlen(json), err, errlen);
	ck_assert(r != 0 || l.sets[0].loaded);
	ck_assert(r == 0 || (!l.sets[0].loaded && l.sets[0].n_colls == 0));
	free(json);
	sets_free(&l);
	return r;
}

START_TEST(hostile_manifests_refused)
{
	static const struct { const char *db, *entry, *why; } cases[] = {
		{ "\"\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"}", "empty" },
		{ "\"a\\nb\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"}", "control character" },
		{ "\"a\\\\b\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"}", "'\\'" },
		{ "\"a b\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"}", "' '" },
		{ "\"a\\u0000b\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"}", "NUL" },
		{ "\"d\"", "{\"name\":\"\",\"blob\":\"u.bson.gz\"}", "empty" },
		{ "\"d\"", "{\"name\":\"a\\u0000b\",\"blob\":\"u.bson.gz\"}", "NUL" },
		{ "\"d\"", "{\"name\":\"a$b\",\"blob\":\"u.bson.gz\"}", "'$'" },
		{ "\"d\"", "{\"name\":\"system.views\",\"blob\":\"u.bson.gz\"}", "system." },
		{ "\"d\"", "{\"name\":\"u\",\"blob\":\"../backups/backups/2026-12-04/"
		  "tralivali_users.bson.gz\"}", "not inside the set's folder" },
		{ "\"d\"", "{\"name\":\"u\",\"blob\":\"backups/2026-11-27/../x/u.bson.gz\"}",
		  "'..' segment" },
		{ "\"d\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\",\"metadata_blob\":"
		  "\"backups/2026-11-27/./m\"}", "metadata blob" },
		{ "\"d\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\"},{\"name\":\"u\",\"blob\":"
		  "\"v.bson.gz\"}", "listed twice" },
	};
	char err[512], entry[600], name[301];

	ck_assert_msg(parse_one("\"d\"", "{\"name\":\"u\",\"blob\":\"u.bson.gz\",\"metadata_blob\":"
				"\"u.metadata.json.gz\"}", err, sizeof(err)) == 0, "%s", err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse_one(cases[i].db, cases[i].entry, err, sizeof(err)) == -1,
			      "case %zu passed", i);
		ck_assert_msg(strstr(err, cases[i].why) != NULL, "case %zu: %s", i, err);
	}
	/* A 300-byte collection name. */
	memset(name, 'c', 300);
	name[300] = '\0';
	snprintf(entry, sizeof(entry), "{\"name\":\"%s\",\"blob\":\"u.bson.gz\"}", name);
	ck_assert_int_eq(parse_one("\"d\"", entry, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "namespace"));
	/* The message shows a hostile name escaped. */
	ck_assert_int_eq(parse_one("\"d\"", "{\"name\":\"u\",\"blob\":\"../a\\nb\"}", err,
				   sizeof(err)), -1);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* What goes on the wire for a blob name with dot segments: the path as
 * built, never resolved by curl (CURLOPT_PATH_AS_IS).  A one-shot server
 * in a child logs the request line and answers 404. */
START_TEST(dot_segments_go_out_as_they_are)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct azure_client *c;
	struct azure_blob_item props;
	struct azure_error aerr;
	char cs[256], err[256], head[4096];
	int lfd, p[2], status;
	size_t got = 0;
	pid_t pid;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static const char answer[] = "HTTP/1.1 404 The specified blob does not exist.\r\n"
			"x-ms-error-code: BlobNotFound\r\nContent-Length: 0\r\n"
			"Connection: close\r\n\r\n";
		char buf[4096];
		size_t len = 0;
		int cfd;

		signal(SIGTERM, SIG_DFL);
		if ((cfd = accept(lfd, NULL, NULL)) < 0)
			_exit(2);
		while (len < sizeof(buf) - 1 && memmem(buf, len, "\r\n\r\n", 4) == NULL) {
			ssize_t n = read(cfd, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				_exit(3);
			len += (size_t)n;
		}
		if (write(p[1], buf, len) != (ssize_t)len ||
		    write(cfd, answer, sizeof(answer) - 1) != (ssize_t)sizeof(answer) - 1)
			_exit(4);
		close(cfd);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	/* A SAS: nothing in the request is signed over its path, so only the
	 * path decides which container is read. */
	snprintf(cs, sizeof(cs), "BlobEndpoint=http://127.0.0.1:%d/devstoreaccount1;"
		 "SharedAccessSignature=sv=2021-08-06&sig=c2ln", ntohs(sa.sin_port));
	c = azure_client_new(cs, "backups", err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	azure_client_set_max_retries(c, 0);
	ck_assert_int_eq(azure_get_properties(c, "set/../../other/x", &props, &aerr), -1);
	azure_client_free(c);
	for (;;) {
		ssize_t n = read(p[0], head + got, sizeof(head) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	head[got] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(strncmp(head, "HEAD /devstoreaccount1/backups/set/../../other/x?", 49) == 0,
		      "request: %.200s", head);
}
END_TEST

static Suite *verify_suite(void)
{
	Suite *s = suite_create("verify");
	TCase *tc = tcase_create("stream");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, good_stream_any_chunking);
	tcase_add_test(tc, empty_collection_and_empty_input);
	tcase_add_test(tc, multi_member_gzip_and_trailing_garbage);
	tcase_add_test(tc, flipped_byte_anywhere);
	tcase_add_test(tc, truncated_anywhere);
	tcase_add_test(tc, truncated_last_document);
	tcase_add_test(tc, count_off_by_one);
	tcase_add_test(tc, bad_bson);
	tcase_add_test(tc, gunzip_whole_buffer);
	tcase_add_test(tc, limits_from_the_manifest);
	tcase_add_test(tc, decompression_bomb_stops_in_one_chunk);
	tcase_add_test(tc, metadata_inflated_cap);
	suite_add_tcase(s, tc);
	tc = tcase_create("sets");
	tcase_add_test(tc, metadata_shape);
	tcase_add_test(tc, manifest_parse);
	tcase_add_test(tc, set_names);
	tcase_add_test(tc, same_second_sets_in_order);
	tcase_add_test(tc, database_and_collection_names);
	tcase_add_test(tc, blob_names_stay_in_the_set);
	tcase_add_test(tc, hostile_manifests_refused);
	tcase_add_test(tc, dot_segments_go_out_as_they_are);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(verify_suite());
	int failed;

	log_open("check_verify", LOG_TARGET_STDERR, LOG_CRIT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
