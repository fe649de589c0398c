/* check_azure_xml.c - List Blobs pages and Error documents. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "azure_xml.h"
#include "azure_suites.h"

/* A page as Azure sends it: BOM, metadata, a prefix entry, a NextMarker. */
static const char page1[] =
	"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
	"<EnumerationResults ServiceEndpoint=\"https://a.blob.core.windows.net/\" "
	"ContainerName=\"backups\"><Prefix>backups/</Prefix><MaxResults>2</MaxResults>"
	"<Blobs>"
	"<Blob><Name>backups/2026-11-26/tralivali_users.bson.gz</Name>"
	"<Properties><Creation-Time>Thu, 26 Nov 2026 03:00:01 GMT</Creation-Time>"
	"<Last-Modified>Thu, 26 Nov 2026 03:00:09 GMT</Last-Modified>"
	"<Etag>0x8DB0000000000</Etag><Content-Length>1048576</Content-Length>"
	"<Content-Type>application/gzip</Content-Type><Content-Encoding />"
	"<Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5><BlobType>BlockBlob</BlobType>"
	"</Properties><Metadata><documents>1000</documents><sha256>abc&amp;def</sha256>"
	"</Metadata><OrMetadata /></Blob>"
	"<BlobPrefix><Name>backups/2026-11-27/</Name></BlobPrefix>"
	"<Blob><Name Encoded=\"true\">backups/odd%20name%0A.gz</Name><Properties>"
	"<Last-Modified>Fri, 27 Nov 2026 03:00:09 GMT</Last-Modified>"
	"<Content-Length>0</Content-Length></Properties></Blob>"
	"</Blobs><NextMarker>2!96!MDAwMDc2IWJhY2t1cHMv</NextMarker></EnumerationResults>";

static const char page2[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs>"
	"<Blob><Name>backups/z</Name><Properties><Content-Length>7</Content-Length>"
	"</Properties></Blob></Blobs><NextMarker /></EnumerationResults>";

struct seen {
	int n;
	char names[8][128];
	struct azure_blob_item first;
	int stop_after;
};

static int collect(void *ctx, const struct azure_blob_item *item)
{
	struct seen *s = ctx;

	ck_assert_int_lt(s->n, 8);
	strncpy(s->names[s->n], item->name, sizeof(s->names[0]) - 1);
	if (s->n == 0 && strcmp(item->name, "backups/z") != 0) {
		s->first.size = item->size;
		s->first.last_modified = item->last_modified;
		s->first.content_md5 = strdup(item->content_md5);
		s->first.content_type = strdup(item->content_type);
		ck_assert_str_eq(azure_blob_item_meta(item, "documents"), "1000");
		ck_assert_str_eq(azure_blob_item_meta(item, "SHA256"), "abc&def");
		ck_assert_ptr_null(azure_blob_item_meta(item, "bsonbytes"));
		ck_assert(!item->is_prefix);
	}
	if (s->n == 1)
		ck_assert(item->is_prefix);
	if (s->n == 2) {
		ck_assert_uint_eq(item->size, 0);
		ck_assert_str_eq(item->content_md5, "");
		ck_assert_uint_eq(item->n_meta, 0);
	}
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

START_TEST(paged_listing)
{
	struct seen s = { 0 };
	char *marker = NULL, err[256];

	ck_assert_int_eq(azure_parse_blob_list(page1, sizeof(page1) - 1, collect, &s, &marker,
					       err, sizeof(err)), 0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.names[0], "backups/2026-11-26/tralivali_users.bson.gz");
	ck_assert_str_eq(s.names[1], "backups/2026-11-27/");
	ck_assert_str_eq(s.names[2], "backups/odd name\n.gz");
	ck_assert_uint_eq(s.first.size, 1048576);
	ck_assert_int_eq(s.first.last_modified, 1795662009);
	ck_assert_str_eq(s.first.content_md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
	ck_assert_str_eq(s.first.content_type, "application/gzip");
	ck_assert_ptr_nonnull(marker);
	ck_assert_str_eq(marker, "2!96!MDAwMDc2IWJhY2t1cHMv");
	free(marker);
	free(s.first.content_md5);
	free(s.first.content_type);

	struct seen s2 = { 0 };
	ck_assert_int_eq(azure_parse_blob_list(page2, sizeof(page2) - 1, collect, &s2, &marker,
					       err, sizeof(err)), 0);
	ck_assert_ptr_null(marker);          /* empty NextMarker = last page */
}
END_TEST

START_TEST(callback_stops_listing)
{
	struct seen s = { .stop_after = 1 };
	char *marker = NULL, err[256];

	ck_assert_int_eq(azure_parse_blob_list(page1, sizeof(page1) - 1, collect, &s, &marker,
					       err, sizeof(err)), 7);
	ck_assert_int_eq(s.n, 1);
	ck_assert_ptr_null(marker);
	free(s.first.content_md5);
	free(s.first.content_type);
}
END_TEST

static void list_fails(const char *doc, const char *want)
{
	struct seen s = { 0 };
	char *marker = NULL, err[256] = "";

	ck_assert_int_eq(azure_parse_blob_list(doc, strlen(doc), collect, &s, &marker, err,
					       sizeof(err)), -1);
	ck_assert_msg(strstr(err, want) != NULL, "'%s' not in '%s'", want, err);
	ck_assert_ptr_null(marker);
}

START_TEST(garbage_listing)
{
	list_fails("", "not XML");
	list_fails("<html><body>502 Bad Gateway</body></html>", "not an EnumerationResults");
	list_fails("<EnumerationResults><Blobs><Blob><Name>x</Name><Properties>"
		   "<Content-Length>12x</Content-Length></Properties></Blob></Blobs>"
		   "</EnumerationResults>", "bad Content-Length");
	list_fails("<EnumerationResults><Blobs><Blob><Properties/></Blob></Blobs>"
		   "</EnumerationResults>", "without a Name");
	list_fails("<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs>"
		   "</EnumerationResults>", "no Properties");
	list_fails("<EnumerationResults><Blobs><Blob><Name>x", "not XML");
	list_fails("\x01\x02\x03 binary", "not XML");
	/* No network, no external entities. */
	list_fails("<!DOCTYPE r [<!ENTITY x SYSTEM \"http://127.0.0.1:9/x\">]><r>&x;</r>",
		   "not an EnumerationResults");
}
END_TEST

START_TEST(empty_listing)
{
	struct seen s = { 0 };
	char *marker = NULL, err[256];
	const char *doc = "<?xml version=\"1.0\"?><EnumerationResults><Blobs /><NextMarker />"
			  "</EnumerationResults>";

	ck_assert_int_eq(azure_parse_blob_list(doc, strlen(doc), collect, &s, &marker, err,
					       sizeof(err)), 0);
	ck_assert_int_eq(s.n, 0);
	ck_assert_ptr_null(marker);
}
END_TEST

START_TEST(error_documents)
{
	char code[64], msg[256];
	const char *doc = "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error>"
			  "<Code>ContainerNotFound</Code><Message>The specified container does "
			  "not exist.\nRequestId:1234\nTime:2026-11-26T03:00:00.0000000Z</Message>"
			  "</Error>";

	ck_assert(azure_parse_error_body(doc, strlen(doc), code, sizeof(code), msg, sizeof(msg)));
	ck_assert_str_eq(code, "ContainerNotFound");
	ck_assert_str_eq(msg, "The specified container does not exist.");
	ck_assert(!azure_parse_error_body("", 0, code, sizeof(code), msg, sizeof(msg)));
	ck_assert_str_eq(code, "");
	ck_assert(!azure_parse_error_body("<html/>", 7, code, sizeof(code), msg, sizeof(msg)));
	ck_assert(!azure_parse_error_body("<Error><Code>x", 14, code, sizeof(code), msg, sizeof(msg)));
	/* Truncation into small buffers is safe. */
	ck_assert(azure_parse_error_body(doc, strlen(doc), code, 5, msg, 8));
	ck_assert_str_eq(code, "Cont");
	ck_assert_str_eq(msg, "The spe");
}
END_TEST

Suite *azure_xml_suite(void)
{
	Suite *s = suite_create("azure_xml");
	TCase *tc = tcase_create("xml");

	tcase_add_test(tc, paged_listing);
	tcase_add_test(tc, callback_stops_listing);
	tcase_add_test(tc, garbage_listing);
	tcase_add_test(tc, empty_listing);
	tcase_add_test(tc, error_documents);
	suite_add_tcase(s, tc);
	return s;
}
