/* check_azure_sign.c - Shared Key vectors from azure-blob.md, and the
 * base64 / percent-encoding / date codecs.
 *
 * Two kinds of vectors: path-style (the emulator: the account is in the
 * path too, /devstoreaccount1/devstoreaccount1/...) and production-style
 * (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB: the canonicalized
 * resource is /ACCOUNT + the path as sent, no second account segment).
 * Beyond the pure StringToSign vectors, the production-style requests are
 * also built by the client itself (connection string -> endpoint -> path
 * and query) and, for a paged listing, sent to a canned-response server
 * whose captured request heads are checked against hand-written
 * StringToSigns: what is signed is what is sent. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure_blob.h"
#include "azure_request.h"
#include "azure_sign.h"
#include "azure_suites.h"

#define DATE "Mon, 02 Jan 2023 03:04:05 GMT"
/* The twelve lines of an unsigned-header request: verb excluded. */
#define NO_STD_HEADERS "\n\n\n\n\n\n\n\n\n\n\n\n"
#define XMS_DATE_VERSION "x-ms-date:" DATE "\nx-ms-version:2021-12-02\n"

static void check_vector_account(const char *account, const char *verb,
				 unsigned long long len, const struct azure_header *h, size_t n,
				 const char *path, const char *query, const char *want_sts,
				 const char *want_sig)
{
	size_t key_len;
	unsigned char *key = azure_b64_decode(DEV_KEY, &key_len);
	char sig[AZURE_SIG_B64_SIZE];
	char *sts;

	ck_assert_ptr_nonnull(key);
	ck_assert_uint_eq(key_len, 64);
	sts = azure_string_to_sign(verb, len, h, n, account, path, query);
	ck_assert_ptr_nonnull(sts);
	ck_assert_str_eq(sts, want_sts);
	ck_assert_int_eq(azure_hmac_b64(key, key_len, sts, sig), 0);
	ck_assert_str_eq(sig, want_sig);
	free(sts);
	free(key);
}

static void check_vector(const char *verb, unsigned long long len,
			 const struct azure_header *h, size_t n, const char *path,
			 const char *query, const char *want_sts, const char *want_sig)
{
	check_vector_account("devstoreaccount1", verb, len, h, n, path, query, want_sts,
			     want_sig);
}

START_TEST(vector_create_container)
{
	const struct azure_header h[] = {
		{ "x-ms-version", "2021-12-02" }, { "x-ms-date", DATE },
	};
	check_vector("PUT", 0, h, 2, "/devstoreaccount1/vectors", "restype=container",
		     "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors\nrestype:container",
		     "9XQiv2+asvj+419dj54bqfFEEd2YltLh97/tLT090V8=");
}
END_TEST

START_TEST(vector_put_block)
{
	const struct azure_header h[] = {
		{ "x-ms-date", DATE }, { "x-ms-version", "2021-12-02" },
	};
	check_vector("PUT", 13, h, 2, "/devstoreaccount1/vectors/dir/a.gz",
		     "comp=block&blockid=YmxrLTAwMDAwMDA%3D",
		     "PUT\n\n\n13\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors/dir/a.gz\n"
		     "blockid:YmxrLTAwMDAwMDA=\ncomp:block",
		     "TWpjtVtRtc+OkowwmGAq2nL3gIutI77oQ/twllTtx/k=");
}
END_TEST

START_TEST(vector_put_block_list)
{
	/* Deliberately unsorted, mixed case: the signer sorts and lowercases. */
	const struct azure_header h[] = {
		{ "X-Ms-Meta-Source", "host1" },
		{ "Content-Type", "application/xml" },
		{ "x-ms-blob-content-type", "application/gzip" },
		{ "x-ms-version", "2021-12-02" },
		{ "x-ms-blob-content-encoding", "gzip" },
		{ "x-ms-date", DATE },
	};
	check_vector("PUT", 94, h, 6, "/devstoreaccount1/vectors/dir/a.gz", "comp=blocklist",
		     "PUT\n\n\n94\n\napplication/xml\n\n\n\n\n\n\n"
		     "x-ms-blob-content-encoding:gzip\nx-ms-blob-content-type:application/gzip\n"
		     "x-ms-date:" DATE "\nx-ms-meta-source:host1\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors/dir/a.gz\ncomp:blocklist",
		     "oclXHWOx+NDtk4sGB6Uu31RKzUrqbARTiwUatsYKulk=");
}
END_TEST

START_TEST(vector_list_blobs)
{
	const struct azure_header h[] = {
		{ "x-ms-date", DATE }, { "x-ms-version", "2021-12-02" },
	};
	const char *want =
		"GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		"/devstoreaccount1/devstoreaccount1/vectors\ncomp:list\ninclude:metadata\n"
		"maxresults:10\nprefix:dir/\nrestype:container";
	const char *sig = "tvTS3b1Xps408taSIMEsWOwpKKvyAWEfQFDQqPjTMBg=";

	check_vector("GET", 0, h, 2, "/devstoreaccount1/vectors",
		     "restype=container&comp=list&prefix=dir/&include=metadata&maxresults=10",
		     want, sig);
	/* The same request with the prefix percent-encoded signs the same. */
	check_vector("GET", 0, h, 2, "/devstoreaccount1/vectors",
		     "restype=container&comp=list&prefix=dir%2F&include=metadata&maxresults=10",
		     want, sig);
}
END_TEST

/* ---- production-style (host-style) URLs ----------------------------------
 *
 * https://myacct.blob.core.windows.net/vectors/...: the account is only in
 * the host name, so the path the client sends (and signs) starts with the
 * container.  Same key and date as above.
 *
 * host_md_*: the four "Production-style (host-style) vectors" of
 * azure-blob.md (computed there by Microsoft's Python SDK).
 *
 * host_*: computed for this file, twice and independently, with
 * /usr/bin/python3 on Debian 12:
 *   (a) by hand from the documented StringToSign - VERB, the eleven standard
 *       header lines (Content-Length empty when 0, Date empty), the sorted
 *       lowercased x-ms-* headers, "/" + account + path as sent, then
 *       "\nname:decoded-value" per query parameter sorted by name - signed
 *       with base64(hmac.new(base64.b64decode(KEY), sts.encode(),
 *       hashlib.sha256).digest());
 *   (b) by azure-storage-blob 12.15's SharedKeyCredentialPolicy.on_request()
 *       applied to an azure.core HttpRequest of the same URL and headers
 *       (x-ms-date and x-ms-version as above).
 * Both gave the signatures below for the StringToSigns below. */

#define DATE_VERSION_HDRS { "x-ms-date", DATE }, { "x-ms-version", "2021-12-02" }

START_TEST(host_md_create_container)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	check_vector_account("myacct", "PUT", 0, h, 2, "/vectors", "restype=container",
			     "PUT" NO_STD_HEADERS XMS_DATE_VERSION "/myacct/vectors\nrestype:container",
			     "ZZqbzzpGTZq33wTd8yHkEh7sFPhlndAErhw4TNwvuwQ=");
}
END_TEST

START_TEST(host_md_put_block)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	check_vector_account("myacct", "PUT", 13, h, 2, "/vectors/dir/a.gz",
			     "comp=block&blockid=YmxrLTAwMDAwMDA%3D",
			     "PUT\n\n\n13\n\n\n\n\n\n\n\n\n" XMS_DATE_VERSION
			     "/myacct/vectors/dir/a.gz\nblockid:YmxrLTAwMDAwMDA=\ncomp:block",
			     "hD33ifJEYnznmicRS8BN+C9ODZbutCBZ8NNga9NCZR0=");
}
END_TEST

START_TEST(host_md_list_blobs)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };
	const char *want = "GET" NO_STD_HEADERS XMS_DATE_VERSION
			   "/myacct/vectors\ncomp:list\ninclude:metadata\nmaxresults:10\n"
			   "prefix:dir/\nrestype:container";
	const char *sig = "27NkUPC9Ty/IBinjJCJi/yiFkjPNA7sMEkKjN0B4SQs=";

	check_vector_account("myacct", "GET", 0, h, 2, "/vectors",
			     "restype=container&comp=list&prefix=dir/&include=metadata&maxresults=10",
			     want, sig);
	/* As the client sends it: the prefix percent-encoded. */
	check_vector_account("myacct", "GET", 0, h, 2, "/vectors",
			     "restype=container&comp=list&prefix=dir%2F&include=metadata&maxresults=10",
			     want, sig);
}
END_TEST

START_TEST(host_md_encoded_name)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	/* The path is signed as sent, still percent-encoded. */
	check_vector_account("myacct", "GET", 0, h, 2, "/vectors/dir/na%20me%2B%C3%A9.gz", NULL,
			     "GET" NO_STD_HEADERS XMS_DATE_VERSION
			     "/myacct/vectors/dir/na%20me%2B%C3%A9.gz",
			     "CBLcl5SVeCXOcdruBtfxfavaqQg3vAOe08fv3f/xRmM=");
}
END_TEST

START_TEST(host_put_block_list_create_only)
{
	/* What azure_put_block_list sends for a data blob with create_only:
	 * If-None-Match is a standard header (its own line), the rest x-ms-*. */
	const struct azure_header h[] = {
		{ "Content-Type", "application/xml" },
		{ "If-None-Match", "*" },
		{ "x-ms-blob-content-type", "application/gzip" },
		{ "x-ms-blob-content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==" },
		{ "x-ms-meta-documents", "500" },
		DATE_VERSION_HDRS,
	};

	check_vector_account("myacct", "PUT", 94, h, 7,
			     "/vectors/backups/2023-01-02/tralivali_users.bson.gz", "comp=blocklist",
			     "PUT\n\n\n94\n\napplication/xml\n\n\n\n*\n\n\n"
			     "x-ms-blob-content-md5:1B2M2Y8AsgTpgAmY7PhCfg==\n"
			     "x-ms-blob-content-type:application/gzip\n"
			     "x-ms-date:" DATE "\nx-ms-meta-documents:500\nx-ms-version:2021-12-02\n"
			     "/myacct/vectors/backups/2023-01-02/tralivali_users.bson.gz\n"
			     "comp:blocklist",
			     "ac4NWz2xmIf58nv+gbP06p6QXUpT2a23cnpETIGi5ow=");
}
END_TEST

/* Real Azure's continuation markers look like this one ("2!96!<base64>--");
 * the client sends it percent-encoded ('!' is not unreserved) and signs it
 * decoded. */
#define AZ_MARKER "2!96!MDAwMDI2IWJhY2t1cHMvMjAyMy0wMS0wMi9tYW5pZmVzdC5qc29uITAwMDAyOCE5" \
		  "OTk5LTEyLTMxVDIzOjU5OjU5Ljk5OTk5OTlaIQ--"
#define AZ_MARKER_ENC "2%2196%21MDAwMDI2IWJhY2t1cHMvMjAyMy0wMS0wMi9tYW5pZmVzdC5qc29uITAw" \
		      "MDAyOCE5OTk5LTEyLTMxVDIzOjU5OjU5Ljk5OTk5OTlaIQ--"
#define LIST_MARKER_STS "GET" NO_STD_HEADERS XMS_DATE_VERSION \
	"/myacct/vectors\ncomp:list\ninclude:metadata\nmarker:" AZ_MARKER \
	"\nmaxresults:5000\nprefix:backups/\nrestype:container"
#define LIST_MARKER_SIG "NFGBOJt/bA6Ugya/4Oba0tV5azsnxUCJRhqKiufyEVw="

START_TEST(host_list_second_page)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	/* prune-sets' listing (prefix backups/), second page. */
	check_vector_account("myacct", "GET", 0, h, 2, "/vectors",
			     "restype=container&comp=list&prefix=backups%2F&include=metadata"
			     "&maxresults=5000&marker=" AZ_MARKER_ENC,
			     LIST_MARKER_STS, LIST_MARKER_SIG);
	/* The parameters' order in the URL does not matter. */
	check_vector_account("myacct", "GET", 0, h, 2, "/vectors",
			     "marker=" AZ_MARKER_ENC "&maxresults=5000&include=metadata"
			     "&prefix=backups%2F&comp=list&restype=container",
			     LIST_MARKER_STS, LIST_MARKER_SIG);
}
END_TEST

START_TEST(host_list_whole_container_marker)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	/* sets_scan's listing (no prefix) with a marker holding every
	 * character that must be encoded in a query value: '+', '/', '=', ' '.
	 * Signed decoded; '+' stays '+' (it is not a space in a query here). */
	check_vector_account("myacct", "GET", 0, h, 2, "/vectors",
			     "restype=container&comp=list&include=metadata&maxresults=5000"
			     "&marker=a%2Bb%2Fc%3Dd%20e",
			     "GET" NO_STD_HEADERS XMS_DATE_VERSION
			     "/myacct/vectors\ncomp:list\ninclude:metadata\nmarker:a+b/c=d e\n"
			     "maxresults:5000\nrestype:container",
			     "nWzSib41ZZkBMne/Xbs8M/C53TUZyMBRYeha60X73po=");
}
END_TEST

START_TEST(host_delete_blob)
{
	const struct azure_header h[] = { { "x-ms-delete-snapshots", "include" }, DATE_VERSION_HDRS };

	check_vector_account("myacct", "DELETE", 0, h, 3, "/vectors/backups/2023-01-02/manifest.json",
			     NULL,
			     "DELETE" NO_STD_HEADERS "x-ms-date:" DATE "\n"
			     "x-ms-delete-snapshots:include\nx-ms-version:2021-12-02\n"
			     "/myacct/vectors/backups/2023-01-02/manifest.json",
			     "z43ThgngjJxz3c64MoYAf4uR+iBfpxbc90hUJX76x6s=");
}
END_TEST

START_TEST(host_get_resumed_range)
{
	/* A resumed download: If-Match on the ETag (quotes and all), x-ms-range. */
	const struct azure_header h[] = {
		{ "x-ms-range", "bytes=1024-" }, { "If-Match", "\"0x8DAEC7F0D1B2C3D\"" }, DATE_VERSION_HDRS,
	};

	check_vector_account("myacct", "GET", 0, h, 4, "/vectors/dir/a.gz", "",
			     "GET\n\n\n\n\n\n\n\n\"0x8DAEC7F0D1B2C3D\"\n\n\n\n"
			     "x-ms-date:" DATE "\nx-ms-range:bytes=1024-\nx-ms-version:2021-12-02\n"
			     "/myacct/vectors/dir/a.gz",
			     "/wFKw3mvJTWmmWhxpRN789MLcurGiVpSbjQTJT3fbQA=");
}
END_TEST

START_TEST(host_put_blob_manifest)
{
	/* azure_put_blob for a manifest: Content-MD5 (a standard header), no
	 * Content-Type (sent empty, signed empty). */
	const struct azure_header h[] = {
		{ "x-ms-blob-type", "BlockBlob" },
		{ "x-ms-blob-content-type", "application/json" },
		{ "Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww==" },
		DATE_VERSION_HDRS,
	};

	check_vector_account("myacct", "PUT", 321, h, 5, "/vectors/backups/2023-01-02/manifest.json",
			     NULL,
			     "PUT\n\n\n321\nXrY7u+Ae7tCTyyK7j1rNww==\n\n\n\n\n\n\n\n"
			     "x-ms-blob-content-type:application/json\nx-ms-blob-type:BlockBlob\n"
			     XMS_DATE_VERSION "/myacct/vectors/backups/2023-01-02/manifest.json",
			     "5zms0qGas1nU0+tQzwixOpfsCDR3E0ItuRfFuVQIIf0=");
}
END_TEST

START_TEST(host_head_percent_in_name)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	/* "dir/100% sure?#.gz": '%', '?' and '#' must be encoded in the path
	 * and are signed encoded, never decoded. */
	check_vector_account("myacct", "HEAD", 0, h, 2, "/vectors/dir/100%25%20sure%3F%23.gz", NULL,
			     "HEAD" NO_STD_HEADERS XMS_DATE_VERSION
			     "/myacct/vectors/dir/100%25%20sure%3F%23.gz",
			     "D4W1lPZWw7/mwNYwo2iTL1nwx7/ZHU87tyWjdRRgIVQ=");
}
END_TEST

START_TEST(host_azurite_put_block)
{
	const struct azure_header h[] = { DATE_VERSION_HDRS };

	/* Azurite's production-style endpoint
	 * http://devstoreaccount1.blob.localhost:PORT/vectors/dir/a.gz: one
	 * account segment, unlike the path-style vector_put_block above. */
	check_vector_account("devstoreaccount1", "PUT", 13, h, 2, "/vectors/dir/a.gz",
			     "comp=block&blockid=YmxrLTAwMDAwMDA%3D",
			     "PUT\n\n\n13\n\n\n\n\n\n\n\n\n" XMS_DATE_VERSION
			     "/devstoreaccount1/vectors/dir/a.gz\nblockid:YmxrLTAwMDAwMDA=\ncomp:block",
			     "JxqUlhQWD5OSp0/yFBsal0ee7S79EaPYfhM+wZmAFMI=");
}
END_TEST

/* ---- the client builds production-style requests ------------------------ */

static struct azure_client *client_for(const char *cs, const char *container)
{
	char err[256];
	struct azure_client *c = azure_client_new(cs, container, err, sizeof(err));

	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

/* Signs req as azure_request.c does (its headers, then x-ms-date and
 * x-ms-version) but with the vectors' date, and checks the result. */
static void check_request_signature(struct azure_client *c, struct azure_request *req,
				    const char *want_sts, const char *want_sig)
{
	struct azure_header all[AZURE_REQ_MAX_HEADERS + 2];
	char sig[AZURE_SIG_B64_SIZE];
	size_t n = 0;
	char *sts;

	for (size_t i = 0; i < req->n_hdr; i++)
		all[n++] = req->hdr[i];
	all[n++] = (struct azure_header){ "x-ms-date", DATE };
	all[n++] = (struct azure_header){ "x-ms-version", AZURE_API_VERSION };
	sts = azure_string_to_sign(req->verb, req->body_len, all, n, c->conn.account,
				   req->path, req->query);
	ck_assert_ptr_nonnull(sts);
	ck_assert_str_eq(sts, want_sts);
	ck_assert_int_eq(azure_hmac_b64(c->conn.key, c->conn.key_len, sts, sig), 0);
	ck_assert_str_eq(sig, want_sig);
	free(sts);
}

START_TEST(production_endpoint_requests)
{
	struct azure_client *c;
	struct azure_request req;
	char *query = NULL;

	/* No BlobEndpoint: the public endpoint, account in the host only. */
	c = client_for("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" DEV_KEY,
		       "vectors");
	ck_assert_str_eq(azure_client_endpoint(c), "https://myacct.blob.core.windows.net");
	ck_assert_str_eq(c->origin, "https://myacct.blob.core.windows.net");
	ck_assert_str_eq(c->path_prefix, "");

	ck_assert_int_eq(azure_request_init(&req, c, "Get Blob", "GET", "dir/na me+\xc3\xa9.gz",
					    NULL), 0);
	ck_assert_str_eq(req.path, "/vectors/dir/na%20me%2B%C3%A9.gz");
	check_request_signature(c, &req, "GET" NO_STD_HEADERS XMS_DATE_VERSION
				"/myacct/vectors/dir/na%20me%2B%C3%A9.gz",
				"CBLcl5SVeCXOcdruBtfxfavaqQg3vAOe08fv3f/xRmM=");
	azure_request_cleanup(&req);

	ck_assert_int_eq(azure_put_block_request(&req, c, "dir/a.gz", "YmxrLTAwMDAwMDA=",
						 "thirteen byte", 13, NULL), 0);
	ck_assert_str_eq(req.path, "/vectors/dir/a.gz");
	ck_assert_str_eq(req.query, "comp=block&blockid=YmxrLTAwMDAwMDA%3D");
	check_request_signature(c, &req, "PUT\n\n\n13\n\n\n\n\n\n\n\n\n" XMS_DATE_VERSION
				"/myacct/vectors/dir/a.gz\nblockid:YmxrLTAwMDAwMDA=\ncomp:block",
				"hD33ifJEYnznmicRS8BN+C9ODZbutCBZ8NNga9NCZR0=");
	azure_request_cleanup(&req);

	/* The second page of prune-sets' listing, built as azure_list_blobs
	 * builds it. */
	ck_assert_int_eq(azure_query_add(&query, "restype", "container"), 0);
	ck_assert_int_eq(azure_query_add(&query, "comp", "list"), 0);
	ck_assert_int_eq(azure_query_add(&query, "prefix", "backups/"), 0);
	ck_assert_int_eq(azure_query_add(&query, "include", "metadata"), 0);
	ck_assert_int_eq(azure_query_add(&query, "maxresults", "5000"), 0);
	ck_assert_int_eq(azure_query_add(&query, "marker", AZ_MARKER), 0);
	ck_assert_int_eq(azure_request_init(&req, c, "List Blobs", "GET", NULL, query), 0);
	free(query);
	ck_assert_str_eq(req.path, "/vectors");
	check_request_signature(c, &req, LIST_MARKER_STS, LIST_MARKER_SIG);
	azure_request_cleanup(&req);
	azure_client_free(c);

	/* Azurite's production-style endpoint, as a user would paste it
	 * (trailing '/'): no path prefix either. */
	c = client_for("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
		       DEV_KEY ";BlobEndpoint=http://devstoreaccount1.blob.localhost:10000/",
		       "vectors");
	ck_assert_str_eq(azure_client_endpoint(c), "http://devstoreaccount1.blob.localhost:10000");
	ck_assert_str_eq(c->origin, "http://devstoreaccount1.blob.localhost:10000");
	ck_assert_str_eq(c->path_prefix, "");
	ck_assert_int_eq(azure_put_block_request(&req, c, "dir/a.gz", "YmxrLTAwMDAwMDA=",
						 "thirteen byte", 13, NULL), 0);
	check_request_signature(c, &req, "PUT\n\n\n13\n\n\n\n\n\n\n\n\n" XMS_DATE_VERSION
				"/devstoreaccount1/vectors/dir/a.gz\nblockid:YmxrLTAwMDAwMDA=\n"
				"comp:block", "JxqUlhQWD5OSp0/yFBsal0ee7S79EaPYfhM+wZmAFMI=");
	azure_request_cleanup(&req);
	azure_client_free(c);

	/* The path-style (emulator) endpoint keeps its prefix: the vector
	 * vector_put_block. */
	c = client_for("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
		       DEV_KEY ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1", "vectors");
	ck_assert_str_eq(c->path_prefix, "/devstoreaccount1");
	ck_assert_int_eq(azure_put_block_request(&req, c, "dir/a.gz", "YmxrLTAwMDAwMDA=",
						 "thirteen byte", 13, NULL), 0);
	check_request_signature(c, &req, "PUT\n\n\n13\n\n\n\n\n\n\n\n\n" XMS_DATE_VERSION
				"/devstoreaccount1/devstoreaccount1/vectors/dir/a.gz\n"
				"blockid:YmxrLTAwMDAwMDA=\ncomp:block",
				"TWpjtVtRtc+OkowwmGAq2nL3gIutI77oQ/twllTtx/k=");
	azure_request_cleanup(&req);
	azure_client_free(c);
}
END_TEST

/* ---- on the wire: a paged listing at a production-style endpoint -------- */

/* The value of header name in the request head req (up to "\r\n"), copied
 * to out; fails the test when missing. */
static void head_value(const char *req, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = req; p != NULL && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *end;
			while (*v == ' ')
				v++;
			end = strstr(v, "\r\n");
			ck_assert_ptr_nonnull(end);
			ck_assert_uint_lt((size_t)(end - v), outlen);
			memcpy(out, v, (size_t)(end - v));
			out[end - v] = '\0';
			return;
		}
		if (strncmp(p, "\r\n", 2) == 0)
			break;
	}
	ck_abort_msg("no %s header in:\n%s", name, req);
}

/* The request (head) in log that starts with request_line; its
 * Authorization must be SharedKey myacct:HMAC(StringToSign), the
 * StringToSign being "GET", twelve empty lines, x-ms-date with the date the
 * request carries, x-ms-version, then resource (canonicalized resource and
 * query). */
static void check_sent(const char *log, const char *request_line, const char *resource)
{
	char date[64], version[32], auth[128], want[128], sig[AZURE_SIG_B64_SIZE];
	char sts[1024];
	const char *req = strstr(log, request_line);
	unsigned char *key;
	size_t key_len;

	ck_assert_msg(req != NULL, "no request '%s' in:\n%s", request_line, log);
	ck_assert_msg(req == log || strncmp(req - 4, "\n--\n", 4) == 0,
		      "'%s' is not a request line", request_line);
	head_value(req, "x-ms-date", date, sizeof(date));
	head_value(req, "x-ms-version", version, sizeof(version));
	head_value(req, "Authorization", auth, sizeof(auth));
	ck_assert_str_eq(version, "2021-12-02");
	ck_assert_int_ne(azure_parse_http_date(date), -1);
	ck_assert_uint_lt((size_t)snprintf(sts, sizeof(sts), "GET" NO_STD_HEADERS "x-ms-date:%s\n"
					   "x-ms-version:2021-12-02\n%s", date, resource),
			  sizeof(sts));
	key = azure_b64_decode(DEV_KEY, &key_len);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(azure_hmac_b64(key, key_len, sts, sig), 0);
	snprintf(want, sizeof(want), "SharedKey myacct:%s", sig);
	ck_assert_str_eq(auth, want);
	free(key);
}

static int count_items(void *ctx, const struct azure_blob_item *item)
{
	char *names = ctx;

	if (strlen(names) + strlen(item->name) + 2 < 256) {
		strcat(names, item->name);
		strcat(names, ";");
	}
	return 0;
}

START_TEST(production_paged_list_on_the_wire)
{
	/* Two pages; the first ends with an Azure-shaped marker.  The client
	 * talks to 127.0.0.1 with no path prefix: the shape of
	 * https://myacct.blob.core.windows.net (what is signed does not depend
	 * on the host name). */
	static const char page1_body[] =
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>"
		"backups/2023-01-01/manifest.json</Name><Properties><Content-Length>9</Content-Length>"
		"</Properties></Blob></Blobs><NextMarker>" AZ_MARKER "</NextMarker>"
		"</EnumerationResults>";
	static const char page2_body[] =
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>"
		"backups/2023-01-02/manifest.json</Name><Properties><Content-Length>9</Content-Length>"
		"</Properties></Blob></Blobs><NextMarker/></EnumerationResults>";
	char r1[1024], r2[1024], cs[512], names[256] = "";
	const char *r[2] = { r1, r2 };
	struct fake_server fs;
	struct azure_error err;
	struct azure_client *c;
	char *log;

	snprintf(r1, sizeof(r1), "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
		 "Connection: close\r\nContent-Length: %zu\r\n\r\n%s", strlen(page1_body), page1_body);
	snprintf(r2, sizeof(r2), "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
		 "Connection: close\r\nContent-Length: %zu\r\n\r\n%s", strlen(page2_body), page2_body);
	fake_server_start(&fs, r, 2);
	snprintf(cs, sizeof(cs), "DefaultEndpointsProtocol=http;AccountName=myacct;AccountKey=%s;"
		 "BlobEndpoint=http://127.0.0.1:%d/", DEV_KEY, fs.port);
	c = client_for(cs, "vectors");
	ck_assert_str_eq(c->path_prefix, "");
	ck_assert_int_eq(azure_list_blobs(c, "backups/", NULL, count_items, names, &err), 0);
	log = fake_server_finish(&fs);
	ck_assert_str_eq(names, "backups/2023-01-01/manifest.json;backups/2023-01-02/manifest.json;");
	check_sent(log, "GET /vectors?restype=container&comp=list&prefix=backups%2F"
		   "&include=metadata&maxresults=5000 HTTP/1.1\r\n",
		   "/myacct/vectors\ncomp:list\ninclude:metadata\nmaxresults:5000\n"
		   "prefix:backups/\nrestype:container");
	check_sent(log, "GET /vectors?restype=container&comp=list&prefix=backups%2F"
		   "&include=metadata&maxresults=5000&marker=" AZ_MARKER_ENC " HTTP/1.1\r\n",
		   "/myacct/vectors\ncomp:list\ninclude:metadata\nmarker:" AZ_MARKER "\n"
		   "maxresults:5000\nprefix:backups/\nrestype:container");
	ck_assert_int_eq(count_substr(log, "GET "), 2);
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(query_empty_params_and_duplicates)
{
	const struct azure_header h[] = { { "x-ms-date", DATE } };
	char *sts = azure_string_to_sign("GET", 0, h, 1, "a", "/c", "b=2&empty=&A=1&b=1");

	ck_assert_ptr_nonnull(sts);
	ck_assert_ptr_nonnull(strstr(sts, "/a/c\na:1\nb:1,2"));
	ck_assert_ptr_null(strstr(sts, "empty"));
	free(sts);
	/* A malformed escape is refused rather than signed wrongly. */
	ck_assert_ptr_null(azure_string_to_sign("GET", 0, h, 1, "a", "/c", "x=%zz"));
}
END_TEST

START_TEST(base64_roundtrip_and_strictness)
{
	char out[64];
	size_t len;
	unsigned char *d;

	azure_b64_encode("", 0, out);
	ck_assert_str_eq(out, "");
	azure_b64_encode("f", 1, out);
	ck_assert_str_eq(out, "Zg==");
	azure_b64_encode("fo", 2, out);
	ck_assert_str_eq(out, "Zm8=");
	azure_b64_encode("foobar", 6, out);
	ck_assert_str_eq(out, "Zm9vYmFy");
	d = azure_b64_decode("Zm8=", &len);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(memcmp(d, "fo", 2), 0);
	free(d);
	d = azure_b64_decode("Zg==", &len);
	ck_assert_uint_eq(len, 1);
	free(d);

	ck_assert_ptr_null(azure_b64_decode("", &len));
	ck_assert_ptr_null(azure_b64_decode("Zm8", &len));      /* not a multiple of 4 */
	ck_assert_ptr_null(azure_b64_decode("Zm=8", &len));     /* padding inside */
	ck_assert_ptr_null(azure_b64_decode("Zm9v!mFy", &len)); /* bad character */
	ck_assert_ptr_null(azure_b64_decode("Zh==", &len));     /* stray bits */
	ck_assert_ptr_null(azure_b64_decode("Zm9vYmFy\n", &len));
	ck_assert_ptr_null(azure_b64_decode("====", &len));
}
END_TEST

START_TEST(percent_encoding)
{
	char *s = azure_pct_encode("a b/c+d=e~_.-", 0);

	ck_assert_str_eq(s, "a%20b%2Fc%2Bd%3De~_.-");
	free(s);
	s = azure_pct_encode("backups/2026-11-26/x y.gz", 1);
	ck_assert_str_eq(s, "backups/2026-11-26/x%20y.gz");
	free(s);
	s = azure_pct_decode("a%2Fb%3d+", 9);
	ck_assert_str_eq(s, "a/b=+");
	free(s);
	ck_assert_ptr_null(azure_pct_decode("%2", 2));
	ck_assert_ptr_null(azure_pct_decode("%g0", 3));
	ck_assert_ptr_null(azure_pct_decode("%00", 3));
}
END_TEST

START_TEST(http_dates)
{
	char buf[AZURE_DATE_SIZE];

	azure_http_date(1672628645, buf);
	ck_assert_str_eq(buf, DATE);
	ck_assert_int_eq(azure_parse_http_date(DATE), 1672628645);
	ck_assert_int_eq(azure_parse_http_date("Mon, 02 Jan 2023 03:04:05"), -1);
	ck_assert_int_eq(azure_parse_http_date("Mon, 02 Foo 2023 03:04:05 GMT"), -1);
	ck_assert_int_eq(azure_parse_http_date("garbage"), -1);
}
END_TEST

Suite *azure_sign_suite(void)
{
	Suite *s = suite_create("azure_sign");
	TCase *tc = tcase_create("sign");

	tcase_add_test(tc, vector_create_container);
	tcase_add_test(tc, vector_put_block);
	tcase_add_test(tc, vector_put_block_list);
	tcase_add_test(tc, vector_list_blobs);
	tcase_add_test(tc, host_md_create_container);
	tcase_add_test(tc, host_md_put_block);
	tcase_add_test(tc, host_md_list_blobs);
	tcase_add_test(tc, host_md_encoded_name);
	tcase_add_test(tc, host_put_block_list_create_only);
	tcase_add_test(tc, host_list_second_page);
	tcase_add_test(tc, host_list_whole_container_marker);
	tcase_add_test(tc, host_delete_blob);
	tcase_add_test(tc, host_get_resumed_range);
	tcase_add_test(tc, host_put_blob_manifest);
	tcase_add_test(tc, host_head_percent_in_name);
	tcase_add_test(tc, host_azurite_put_block);
	tcase_add_test(tc, production_endpoint_requests);
	tcase_add_test(tc, production_paged_list_on_the_wire);
	tcase_add_test(tc, query_empty_params_and_duplicates);
	tcase_add_test(tc, base64_roundtrip_and_strictness);
	tcase_add_test(tc, percent_encoding);
	tcase_add_test(tc, http_dates);
	suite_add_tcase(s, tc);
	return s;
}
