/* check_azure_connstr.c - connection string forms and every error path;
 * no error message may repeat a key or SAS. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "azure_suites.h"
#include "connstr.h"

#define SAS_SIG "Zm9vYmFyc2VjcmV0c2lnbmF0dXJl"
#define SAS "sv=2021-12-02&ss=b&srt=sco&sp=racwdl&se=2030-01-01T00:00:00Z&sig=" SAS_SIG

static void parse_ok(const char *text, struct azure_conn *c)
{
	char err[256] = "";

	ck_assert_msg(connstr_parse(text, c, err, sizeof(err)) == 0, "%s: %s", text, err);
}

/* Fails, the message mentions want, and never a secret. */
static void parse_fails(const char *text, const char *want)
{
	struct azure_conn c;
	char err[256] = "";

	ck_assert_int_eq(connstr_parse(text, &c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, want) != NULL, "'%s' not in '%s'", want, err);
	ck_assert_msg(strstr(err, "Eby8vdM02x") == NULL, "key in '%s'", err);
	ck_assert_msg(strstr(err, SAS_SIG) == NULL, "SAS in '%s'", err);
	ck_assert_msg(strstr(err, "c2VjcmV0") == NULL, "secret in '%s'", err);
	ck_assert_ptr_null(c.endpoint);
	ck_assert_ptr_null(c.key);
}

START_TEST(standard_account_key)
{
	struct azure_conn c;

	parse_ok("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" DEV_KEY
		 ";EndpointSuffix=core.windows.net", &c);
	ck_assert_str_eq(c.endpoint, "https://myacct.blob.core.windows.net");
	ck_assert_str_eq(c.account, "myacct");
	ck_assert_uint_eq(c.key_len, 64);
	ck_assert_ptr_null(c.sas);
	ck_assert(!c.http);
	connstr_free(&c);

	/* Keys are case-insensitive, a trailing ';' and spaces are fine,
	 * the protocol defaults to https, the suffix to core.windows.net. */
	parse_ok(" accountname=myacct ; ACCOUNTKEY=" DEV_KEY ";", &c);
	ck_assert_str_eq(c.endpoint, "https://myacct.blob.core.windows.net");
	ck_assert(!c.http);
	connstr_free(&c);

	parse_ok("AccountName=a1;AccountKey=" DEV_KEY ";EndpointSuffix=core.chinacloudapi.cn", &c);
	ck_assert_str_eq(c.endpoint, "https://a1.blob.core.chinacloudapi.cn");
	connstr_free(&c);

	/* Portal strings list other services: ignored. */
	parse_ok("BlobEndpoint=https://x.blob.core.windows.net/;QueueEndpoint=https://x.queue."
		 "core.windows.net/;FileEndpoint=https://x.file.core.windows.net/;"
		 "TableEndpoint=https://x.table.core.windows.net/;SharedAccessSignature=" SAS, &c);
	ck_assert_str_eq(c.endpoint, "https://x.blob.core.windows.net");
	ck_assert_str_eq(c.sas, SAS);
	ck_assert_ptr_null(c.key);
	ck_assert_ptr_null(c.account);
	connstr_free(&c);
}
END_TEST

START_TEST(http_only_when_said)
{
	struct azure_conn c;

	parse_ok("DefaultEndpointsProtocol=http;AccountName=a;AccountKey=" DEV_KEY, &c);
	ck_assert_str_eq(c.endpoint, "http://a.blob.core.windows.net");
	ck_assert(c.http);
	connstr_free(&c);

	parse_ok("AccountName=a;AccountKey=" DEV_KEY ";BlobEndpoint=HTTP://10.0.0.5:10000/a/", &c);
	ck_assert_str_eq(c.endpoint, "http://10.0.0.5:10000/a");
	ck_assert(c.http);
	connstr_free(&c);

	/* https wins when the endpoint says https. */
	parse_ok("DefaultEndpointsProtocol=http;AccountName=a;AccountKey=" DEV_KEY
		 ";BlobEndpoint=https://a.example.net", &c);
	ck_assert(!c.http);
	connstr_free(&c);

	parse_fails("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" DEV_KEY
		    ";BlobEndpoint=http://a.example.net", "DefaultEndpointsProtocol=https");
	parse_fails("DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=" DEV_KEY,
		    "must be https or http");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";BlobEndpoint=a.example.net",
		    "must start with https://");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";BlobEndpoint=https://a.example.net?x=1",
		    "without query");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";BlobEndpoint=https://:443/",
		    "no host");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";BlobEndpoint=https://h:99999",
		    "bad port");
}
END_TEST

START_TEST(development_storage)
{
	struct azure_conn c;

	parse_ok("UseDevelopmentStorage=true", &c);
	ck_assert_str_eq(c.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
	ck_assert_str_eq(c.account, "devstoreaccount1");
	ck_assert_uint_eq(c.key_len, 64);
	ck_assert(c.http);
	connstr_free(&c);

	parse_ok("usedevelopmentstorage=TRUE;BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1", &c);
	ck_assert_str_eq(c.endpoint, "http://127.0.0.1:41234/devstoreaccount1");
	connstr_free(&c);

	parse_fails("UseDevelopmentStorage=false", "must be 'true'");
	parse_fails("UseDevelopmentStorage=true;AccountName=x", "cannot be combined with AccountName");
}
END_TEST

START_TEST(blob_endpoint_and_sas)
{
	struct azure_conn c;

	parse_ok("BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?" SAS, &c);
	ck_assert_str_eq(c.sas, SAS);             /* leading '?' dropped */
	ck_assert_ptr_null(c.key);
	connstr_free(&c);

	parse_ok("AccountName=acct;SharedAccessSignature=" SAS, &c);
	ck_assert_str_eq(c.endpoint, "https://acct.blob.core.windows.net");
	connstr_free(&c);

	parse_fails("BlobEndpoint=https://a.b;SharedAccessSignature=sv=2021&sp=r", "does not look like");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";SharedAccessSignature=" SAS, "use one");
	parse_fails("SharedAccessSignature=" SAS, "AccountName is missing");
	parse_fails("BlobEndpoint=https://a.b;EndpointSuffix=x.net;SharedAccessSignature=" SAS,
		    "not both");
}
END_TEST

START_TEST(error_paths)
{
	parse_fails("", "empty");
	parse_fails("AccountKey=" DEV_KEY, "AccountName is missing");
	parse_fails("AccountName=a", "no credential");
	parse_fails("AccountName=a;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUz", "not valid base64");
	parse_fails("AccountName=a;AccountKey=Eby8vdM02x!OcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UV"
		    "ErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==", "not valid base64");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";Acountkey=x", "unknown key 'Acountkey'");
	parse_fails("AccountName=a;AccountName=b;AccountKey=" DEV_KEY, "AccountName given twice");
	parse_fails("AccountName=;AccountKey=" DEV_KEY, "AccountName is empty");
	parse_fails("AccountName=a;AccountKey=", "AccountKey is empty");
	parse_fails("AccountName=a b;AccountKey=" DEV_KEY, "letters and digits");
	parse_fails("AccountName=a;AccountKey=" DEV_KEY ";EndpointSuffix=.bad", "not a host name");
	parse_fails("AccountName=a;garbage", "part 2 has no '='");
	/* A bare key pasted where the string should be splits into a "name"
	 * that is the secret itself: it must not be echoed. */
	parse_fails(DEV_KEY, "not shown");
	/* A SAS pasted without its key name: only "sv" is named. */
	parse_fails("AccountName=a;" SAS, "unknown key 'sv'");
}
END_TEST

Suite *azure_connstr_suite(void)
{
	Suite *s = suite_create("azure_connstr");
	TCase *tc = tcase_create("connstr");

	tcase_add_test(tc, standard_account_key);
	tcase_add_test(tc, http_only_when_said);
	tcase_add_test(tc, development_storage);
	tcase_add_test(tc, blob_endpoint_and_sas);
	tcase_add_test(tc, error_paths);
	suite_add_tcase(s, tc);
	return s;
}
