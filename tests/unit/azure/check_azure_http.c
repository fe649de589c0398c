/* check_azure_http.c - the client against a canned-response HTTP server:
 * retries and Retry-After, a 403 that is not retried, SAS requests, error
 * replies, paged listings, resumed downloads and the block engine. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "azure_blob.h"
#include "block_upload.h"
#include "azure_suites.h"
#include "child_status.h"

#define OK201 "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#define SAS_SIG "U0VDUkVUU0lHTkFUVVJFdmFsdWU%3D"

static void serve_one(int cfd, const char *response, int log_fd)
{
	char buf[1 << 16];
	size_t len = 0, head_len = 0, body_len = 0;
	char *end = NULL;

	while ((end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL) == NULL) {
		ssize_t n = read(cfd, buf + len, sizeof(buf) - len - 1);
		if (n <= 0)
			return;
		len += (size_t)n;
	}
	head_len = (size_t)(end - buf) + 4;
	buf[len] = '\0';
	for (char *p = buf; p < buf + head_len; p = strchr(p, '\n') + 1) {
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			body_len = strtoul(p + 15, NULL, 10);
		if (strchr(p, '\n') == NULL)
			break;
	}
	while (len < head_len + body_len && len < sizeof(buf) - 1) {
		ssize_t n = read(cfd, buf + len, sizeof(buf) - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (write(log_fd, buf, len) < 0 || write(log_fd, "\n--\n", 4) < 0)
		_exit(3);
	if (write(cfd, response, strlen(response)) < 0)
		return;
	shutdown(cfd, SHUT_WR);
	/* Let the client see the whole answer before the reset of close(). */
	while (read(cfd, buf, sizeof(buf)) > 0)
		;
}

void fake_server_start(struct fake_server *fs, const char *const *responses, size_t n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int lfd, p[2];

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	fs->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fs->pid = fork();
	ck_assert_int_ge(fs->pid, 0);
	if (fs->pid == 0) {
		/* check's runner forwards SIGTERM to its process group: the
		 * server must not inherit that handler. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		close(p[0]);
		for (size_t i = 0; i < n; i++) {
			int cfd = accept(lfd, NULL, NULL);
			if (cfd < 0)
				_exit(2);
			serve_one(cfd, responses[i], p[1]);
			close(cfd);
		}
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	fs->log_fd = p[0];
}

char *fake_server_finish(struct fake_server *fs)
{
	size_t len = 0, cap = 1 << 16;
	char *log = malloc(cap);
	int status;

	/* The server logs a request before answering it, so everything the
	 * client saw answered is in the pipe already. */
	kill(fs->pid, SIGKILL);
	for (;;) {
		if (len + 1 == cap)
			log = realloc(log, cap *= 2);
		ssize_t n = read(fs->log_fd, log + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	log[len] = '\0';
	close(fs->log_fd);
	waitpid(fs->pid, &status, 0);
	return log;
}

int count_substr(const char *haystack, const char *needle)
{
	int n = 0;

	for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static struct azure_client *key_client(int port)
{
	char cs[512], err[256];
	struct azure_client *c;

	snprintf(cs, sizeof(cs), "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
		 "AccountKey=%s;BlobEndpoint=http://127.0.0.1:%d/devstoreaccount1", DEV_KEY, port);
	c = azure_client_new(cs, "backups", err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	/* Milliseconds, not seconds, between attempts in tests. */
	c->retry.base_ms = 1;
	c->retry.cap_ms = 5;
	return c;
}

static struct azure_client *sas_client(int port)
{
	char cs[512], err[256];
	struct azure_client *c;

	snprintf(cs, sizeof(cs), "BlobEndpoint=http://127.0.0.1:%d/devstoreaccount1;"
		 "SharedAccessSignature=sv=2021-12-02&ss=b&sp=racwdl&sig=%s", port, SAS_SIG);
	c = azure_client_new(cs, "backups", err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	c->retry.base_ms = 1;
	c->retry.cap_ms = 5;
	return c;
}

static void assert_no_secret(const char *text)
{
	ck_assert_msg(strstr(text, "Eby8vdM02x") == NULL, "key in: %s", text);
	ck_assert_msg(strstr(text, "U0VDUkVU") == NULL, "SAS signature in: %s", text);
	ck_assert_msg(strstr(text, "SharedKey") == NULL, "Authorization in: %s", text);
}

START_TEST(put_block_retries_503_with_retry_after)
{
	const char *r[] = {
		"HTTP/1.1 503 Server Busy\r\nx-ms-error-code: ServerBusy\r\nretry-after-ms: 20\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n",
		OK201,
	};
	struct fake_server fs;
	struct azure_error err;
	char id[AZURE_BLOCK_ID_SIZE];

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	azure_block_id(1, 0, id);
	ck_assert_int_eq(azure_put_block(c, "dir/a b.gz", id, "hello, world\n", 13,
					 "IsNoOwlBNsM5g5GucbIPBA==", &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\n--\n"), 2);
	ck_assert_int_eq(count_substr(log, "PUT /devstoreaccount1/backups/dir/a%20b.gz?comp=block"
				      "&blockid=MDAwMDAwMDAwMDAxLTAwMDAwMDAwMDAwMDAwMDAwMDA%3D "), 2);
	ck_assert_int_eq(count_substr(log, "Authorization: SharedKey devstoreaccount1:"), 2);
	ck_assert_int_eq(count_substr(log, "x-ms-version: 2021-12-02\r\n"), 2);
	ck_assert_int_eq(count_substr(log, "Content-MD5: IsNoOwlBNsM5g5GucbIPBA==\r\n"), 2);
	ck_assert_int_eq(count_substr(log, "Content-Length: 13\r\n"), 2);
	ck_assert_int_eq(count_substr(log, "hello, world\n"), 2);     /* same bytes again */
	ck_assert_int_eq(count_substr(log, "Expect"), 0);
	ck_assert_int_eq(count_substr(log, "Content-Type"), 0);
	ck_assert_int_eq(count_substr(log, "Accept-Encoding"), 0);
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(auth_failure_is_clear_and_not_retried)
{
	const char *r[] = {
		"HTTP/1.1 403 Server failed to authenticate the request.\r\n"
		"x-ms-error-code: AuthenticationFailed\r\nx-ms-request-id: req-42\r\n"
		"Content-Type: application/xml\r\nConnection: close\r\nContent-Length: 246\r\n\r\n"
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>"
		"<Message>The MAC signature found in the HTTP request 'abcdEFGH1234' is not the "
		"same as any computed signature. Server used following string to sign: x</Message>"
		"</Error>",
		OK201,
	};
	struct fake_server fs;
	struct azure_error err;
	const char *ids[] = { "QUFBQQ==" };
	struct azure_put_opts po = { .content_type = "application/gzip" };

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	c->retry.max_retries = 5;
	ck_assert_int_eq(azure_put_block_list(c, "x.gz", ids, 1, &po, &err), -1);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\n--\n"), 1);
	ck_assert_int_eq(err.status, 403);
	ck_assert_int_eq(err.attempts, 1);
	ck_assert_str_eq(err.err_class, ERR_CLASS_AUTH);
	ck_assert_str_eq(err.code, "AuthenticationFailed");
	ck_assert_str_eq(err.request_id, "req-42");
	ck_assert_msg(strstr(err.message, "Azure refused the credentials (403 "
			     "AuthenticationFailed)") != NULL, "%s", err.message);
	ck_assert_ptr_nonnull(strstr(err.message, "check the account key / SAS"));
	ck_assert_ptr_nonnull(strstr(err.message, "clock"));
	ck_assert_ptr_nonnull(strstr(err.message, "req-42"));
	ck_assert_ptr_null(strstr(err.message, "abcdEFGH1234"));
	assert_no_secret(err.message);
	/* The block list body and its headers. */
	ck_assert_ptr_nonnull(strstr(log, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
				     "<Latest>QUFBQQ==</Latest></BlockList>"));
	ck_assert_ptr_nonnull(strstr(log, "x-ms-blob-content-type: application/gzip\r\n"));
	ck_assert_ptr_nonnull(strstr(log, "Content-Type: application/xml\r\n"));
	ck_assert_ptr_null(strcasestr(log, "content-encoding"));
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(sas_goes_in_the_query)
{
	const char *r[] = {
		OK201,
		"HTTP/1.1 409 The specified container already exists.\r\n"
		"x-ms-error-code: ContainerAlreadyExists\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n",
	};
	struct fake_server fs;
	struct azure_error err;
	bool created;

	fake_server_start(&fs, r, 2);
	struct azure_client *c = sas_client(fs.port);
	ck_assert_int_eq(azure_container_create(c, &created, &err), 0);
	ck_assert(created);
	ck_assert_int_eq(azure_container_create(c, &created, &err), 0);
	ck_assert(!created);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "PUT /devstoreaccount1/backups?restype=container&sv="
				      "2021-12-02&ss=b&sp=racwdl&sig=" SAS_SIG " HTTP/1.1"), 2);
	ck_assert_int_eq(count_substr(log, "Authorization"), 0);
	ck_assert_int_eq(count_substr(log, "x-ms-version: 2021-12-02"), 2);
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(error_reply_parsed_and_redacted)
{
	const char *r[] = {
		"HTTP/1.1 400 Bad\r\nX-MS-REQUEST-ID: r-1\r\nConnection: close\r\n"
		"Content-Length: 173\r\n\r\n"
		"<?xml version=\"1.0\"?><Error><Code>InvalidQueryParameterValue</Code><Message>Bad"
		" value in sv=2021-12-02&amp;sig=" SAS_SIG "\nRequestId:r-1</Message></Error>",
	};
	struct fake_server fs;
	struct azure_error err;
	bool created;

	fake_server_start(&fs, r, 1);
	struct azure_client *c = sas_client(fs.port);
	ck_assert_int_eq(azure_container_create(c, &created, &err), -1);
	free(fake_server_finish(&fs));
	ck_assert_int_eq(err.status, 400);
	ck_assert_str_eq(err.err_class, ERR_CLASS_CLIENT);
	ck_assert_str_eq(err.code, "InvalidQueryParameterValue");
	ck_assert_str_eq(err.request_id, "r-1");
	ck_assert_msg(strstr(err.message, "HTTP 400 InvalidQueryParameterValue: Bad value")
		      != NULL, "%s", err.message);
	ck_assert_ptr_null(strstr(err.message, "RequestId:"));
	assert_no_secret(err.message);
	azure_client_free(c);
}
END_TEST

START_TEST(head_not_found)
{
	const char *r[] = {
		"HTTP/1.1 404 The specified blob does not exist.\r\nx-ms-error-code: BlobNotFound\r\n"
		"Content-Length: 215\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==\r\n"
		"Content-Type: application/gzip\r\nETag: \"0x8D\"\r\nLast-Modified: Mon, 02 Jan 2023 "
		"03:04:05 GMT\r\nx-ms-meta-documents: 17\r\nX-MS-META-SHA256: ab\r\n"
		"Connection: close\r\n\r\n",
	};
	struct fake_server fs;
	struct azure_error err;
	struct azure_blob_item item;

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_get_properties(c, "nope", &item, &err), -1);
	ck_assert_str_eq(err.err_class, ERR_CLASS_NOTFOUND);
	ck_assert_str_eq(err.code, "BlobNotFound");
	ck_assert_int_eq(azure_get_properties(c, "yes", &item, &err), 0);
	free(fake_server_finish(&fs));
	ck_assert_uint_eq(item.size, 1234);
	ck_assert_str_eq(item.content_md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
	ck_assert_str_eq(item.content_type, "application/gzip");
	ck_assert_str_eq(item.etag, "\"0x8D\"");
	ck_assert_int_eq(item.last_modified, 1672628645);
	ck_assert_str_eq(azure_blob_item_meta(&item, "documents"), "17");
	ck_assert_str_eq(azure_blob_item_meta(&item, "sha256"), "ab");
	azure_blob_item_free(&item);
	azure_client_free(c);
}
END_TEST

/* A create-only commit: If-None-Match: * is sent; a 409 from a blob with
 * other content is ERR_CLASS_EXISTS; a 409 from the very content we sent
 * (an earlier attempt whose answer was lost) is success. */
START_TEST(create_only_commit)
{
	const char *r[] = {
		"HTTP/1.1 409 The specified blob already exists.\r\nx-ms-error-code: "
		"BlobAlreadyExists\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-MD5: b3RoZXJvdGhlcm90aGVyMQ==\r\n"
		"Connection: close\r\n\r\n",
		"HTTP/1.1 412 The condition specified using HTTP conditional header(s) is not "
		"met.\r\nx-ms-error-code: ConditionNotMet\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==\r\n"
		"Connection: close\r\n\r\n",
		OK201,
	};
	const struct azure_put_opts create = { .content_md5 = "1B2M2Y8AsgTpgAmY7PhCfg==",
					       .create_only = true };
	const struct azure_put_opts plain = { .content_md5 = "1B2M2Y8AsgTpgAmY7PhCfg==" };
	struct fake_server fs;
	struct azure_error err;

	fake_server_start(&fs, r, 5);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_put_block_list(c, "s/manifest.json", NULL, 0, &create, &err), -1);
	ck_assert_str_eq(err.err_class, ERR_CLASS_EXISTS);
	ck_assert_msg(strstr(err.message, "already exists") != NULL, "%s", err.message);
	ck_assert_int_eq(azure_put_block_list(c, "s/manifest.json", NULL, 0, &create, &err), 0);
	ck_assert_int_eq(azure_put_block_list(c, "s/manifest.json", NULL, 0, &plain, &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "If-None-Match: *\r\n"), 2);
	ck_assert_int_eq(count_substr(log, "HEAD /devstoreaccount1/backups/s/manifest.json"), 2);
	ck_assert_int_eq(count_substr(log, "PUT /devstoreaccount1/backups/s/manifest.json"), 3);
	free(log);
	azure_client_free(c);
}
END_TEST

static int collect_names(void *ctx, const struct azure_blob_item *item)
{
	char *names = ctx;

	strcat(names, item->name);
	strcat(names, ";");
	return 0;
}

START_TEST(list_follows_next_marker)
{
	const char *r[] = {
		"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n"
		"Content-Length: 213\r\n\r\n"
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>"
		"b/1</Name><Properties><Content-Length>1</Content-Length></Properties></Blob>"
		"</Blobs><NextMarker>2!8+/=</NextMarker></EnumerationResults>",
		"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n"
		"Content-Length: 195\r\n\r\n"
		"<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>"
		"b/2</Name><Properties><Content-Length>2</Content-Length></Properties></Blob>"
		"</Blobs><NextMarker/></EnumerationResults>",
	};
	struct fake_server fs;
	struct azure_error err;
	char names[256] = "";

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_list_blobs(c, "b/", NULL, collect_names, names, &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_str_eq(names, "b/1;b/2;");
	ck_assert_int_eq(count_substr(log, "GET /devstoreaccount1/backups?restype=container&"
				      "comp=list&prefix=b%2F&include=metadata&maxresults=5000 "), 1);
	ck_assert_int_eq(count_substr(log, "&marker=2%218%2B%2F%3D "), 1);
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(list_garbage_is_an_error)
{
	const char *r[] = {
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n\r\nnot xml!!",
	};
	struct fake_server fs;
	struct azure_error err;
	char names[256] = "";

	fake_server_start(&fs, r, 1);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_list_blobs(c, NULL, NULL, collect_names, names, &err), -1);
	free(fake_server_finish(&fs));
	ck_assert_ptr_nonnull(strstr(err.message, "not XML"));
	ck_assert_str_eq(names, "");
	azure_client_free(c);
}
END_TEST

struct membuf {
	char data[64];
	size_t len;
};

static int to_mem(void *ctx, const void *data, size_t len)
{
	struct membuf *m = ctx;

	ck_assert_uint_le(m->len + len, sizeof(m->data));
	memcpy(m->data + m->len, data, len);
	m->len += len;
	return 0;
}

START_TEST(get_resumes_without_repeating_bytes)
{
	const char *r[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"0x1\"\r\nContent-MD5: "
		"eB5eJF1ptWaXm4bijSPyxw==\r\nConnection: close\r\n\r\n01234",
		"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes 5-9/10\r\n"
		"ETag: \"0x1\"\r\nConnection: close\r\n\r\n56789",
	};
	struct fake_server fs;
	struct azure_error err;
	struct azure_blob_item props;
	struct membuf m = { .len = 0 };

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_get_blob(c, "x", 0, to_mem, &m, &props, &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_uint_eq(m.len, 10);
	ck_assert_int_eq(memcmp(m.data, "0123456789", 10), 0);
	ck_assert_uint_eq(props.size, 10);
	ck_assert_str_eq(props.content_md5, "eB5eJF1ptWaXm4bijSPyxw==");
	ck_assert_int_eq(count_substr(log, "x-ms-range: bytes=5-\r\n"), 1);
	ck_assert_int_eq(count_substr(log, "If-Match: \"0x1\"\r\n"), 1);
	free(log);
	azure_blob_item_free(&props);
	azure_client_free(c);
}
END_TEST

START_TEST(retries_run_out)
{
	const char *busy = "HTTP/1.1 500 Internal\r\nx-ms-error-code: InternalError\r\n"
			   "x-ms-retry-after-ms: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	const char *r[] = { busy, busy, busy, busy };
	struct fake_server fs;
	struct azure_error err;

	fake_server_start(&fs, r, 4);
	struct azure_client *c = key_client(fs.port);
	azure_client_set_max_retries(c, 2);
	ck_assert_int_eq(azure_delete_blob(c, "x", &err), AZURE_DELETE_FAILED);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\n--\n"), 3);
	ck_assert_int_eq(count_substr(log, "x-ms-delete-snapshots: include"), 3);
	ck_assert_str_eq(err.err_class, ERR_CLASS_SERVER);
	ck_assert_int_eq(err.attempts, 3);
	ck_assert_ptr_nonnull(strstr(err.message, "after 3 attempts"));
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(delete_outcomes)
{
	const char *r[] = {
		"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 404 Gone\r\nx-ms-error-code: BlobNotFound\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n",
		"HTTP/1.1 409 Immutable\r\nx-ms-error-code: BlobImmutableDueToPolicy\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n",
	};
	struct fake_server fs;
	struct azure_error err;

	fake_server_start(&fs, r, 3);
	struct azure_client *c = key_client(fs.port);
	ck_assert_int_eq(azure_delete_blob(c, "a", &err), AZURE_DELETED);
	ck_assert_int_eq(azure_delete_blob(c, "b", &err), AZURE_DELETE_NOT_FOUND);
	ck_assert_int_eq(azure_delete_blob(c, "c", &err), AZURE_DELETE_IMMUTABLE);
	ck_assert_str_eq(err.code, "BlobImmutableDueToPolicy");
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\n--\n"), 3);
	free(log);
	azure_client_free(c);
}
END_TEST

START_TEST(transport_failure)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct azure_error err;
	bool created;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was free a moment ago: connection refused. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	struct azure_client *c = key_client(ntohs(sa.sin_port));
	azure_client_set_max_retries(c, 1);
	ck_assert_int_eq(azure_container_create(c, &created, &err), -1);
	ck_assert_str_eq(err.err_class, ERR_CLASS_UNREACHABLE);
	ck_assert_int_eq(err.attempts, 2);
	ck_assert_int_eq(err.status, 0);
	ck_assert_ptr_nonnull(strstr(err.message, "127.0.0.1"));
	assert_no_secret(err.message);
	azure_client_free(c);
}
END_TEST

static void feed_pipe(const char *data, size_t len, int *read_fd)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], data, len), (ssize_t)len);
	close(p[1]);
	*read_fd = p[0];
}

static void digest_hex(const EVP_MD *md, const void *data, size_t len, char *out, bool b64)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl;

	EVP_Digest(data, len, d, &dl, md, NULL);
	if (b64) {
		azure_b64_encode(d, dl, out);
		return;
	}
	for (unsigned i = 0; i < dl; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

START_TEST(block_engine_stages_and_commits)
{
	const char *r[] = { OK201, OK201, OK201, OK201 };
	const char data[] = "0123456789abcdefghijKLMNO";
	struct block_upload_opts o = { .block_size = 10, .concurrency = 2, .watch_fd = -1 };
	struct fake_server fs;
	struct azure_error err;
	char md5[32], sha[80];
	int fd;

	fake_server_start(&fs, r, 4);
	struct azure_client *c = key_client(fs.port);
	struct block_upload *up = block_upload_new(c, "dir/x.gz", &o);
	feed_pipe(data, 25, &fd);
	ck_assert_int_eq(block_upload_stage(up, fd, &err), 0);
	close(fd);
	const struct block_upload_stats *st = block_upload_stats(up);
	ck_assert_uint_eq(st->bytes_read, 25);
	ck_assert_uint_eq(st->bytes_staged, 25);
	ck_assert_uint_eq(st->blocks, 3);
	ck_assert_uint_eq(st->blocks_staged, 3);
	digest_hex(EVP_md5(), data, 25, md5, true);
	digest_hex(EVP_sha256(), data, 25, sha, false);
	ck_assert_str_eq(st->md5_b64, md5);
	ck_assert_str_eq(st->sha256_hex, sha);

	struct azure_meta meta[] = { { "sha256", st->sha256_hex }, { "documents", "3" } };
	struct azure_put_opts po = { .content_type = "application/gzip", .meta = meta, .n_meta = 2 };
	ck_assert_int_eq(block_upload_commit(up, &po, &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "comp=block&blockid="), 3);
	ck_assert_int_eq(count_substr(log, "Content-Length: 10\r\n"), 2);
	ck_assert_int_eq(count_substr(log, "Content-Length: 5\r\n"), 1);
	ck_assert_int_eq(count_substr(log, "<Latest>"), 3);
	ck_assert_int_eq(count_substr(log, "\r\n\r\n0123456789"), 1);
	ck_assert_int_eq(count_substr(log, "\r\n\r\nKLMNO"), 1);
	char want[200];
	snprintf(want, sizeof(want), "x-ms-blob-content-md5: %s\r\n", md5);
	ck_assert_int_eq(count_substr(log, want), 1);
	snprintf(want, sizeof(want), "x-ms-meta-sha256: %s\r\n", sha);
	ck_assert_int_eq(count_substr(log, want), 1);
	ck_assert_int_eq(count_substr(log, "x-ms-meta-documents: 3\r\n"), 1);
	free(log);
	block_upload_free(up);
	azure_client_free(c);
}
END_TEST

START_TEST(block_engine_empty_stream)
{
	const char *r[] = { OK201 };
	struct block_upload_opts o = { .block_size = 1 << 20, .concurrency = 4, .watch_fd = -1 };
	struct fake_server fs;
	struct azure_error err;
	int fd;

	fake_server_start(&fs, r, 1);
	struct azure_client *c = key_client(fs.port);
	struct block_upload *up = block_upload_new(c, "empty", &o);
	feed_pipe("", 0, &fd);
	ck_assert_int_eq(block_upload_stage(up, fd, &err), 0);
	close(fd);
	ck_assert_uint_eq(block_upload_stats(up)->blocks, 0);
	ck_assert_str_eq(block_upload_stats(up)->md5_b64, "1B2M2Y8AsgTpgAmY7PhCfg==");
	ck_assert_str_eq(block_upload_stats(up)->sha256_hex,
			 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	ck_assert_int_eq(block_upload_commit(up, NULL, &err), 0);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "comp=blocklist"), 1);
	ck_assert_int_eq(count_substr(log, "<BlockList></BlockList>"), 1);
	ck_assert_int_eq(count_substr(log, "x-ms-blob-content-md5: 1B2M2Y8AsgTpgAmY7PhCfg=="), 1);
	free(log);
	block_upload_free(up);
	azure_client_free(c);
}
END_TEST

START_TEST(block_engine_retries_in_multi)
{
	const char *r[] = {
		"HTTP/1.1 503 Busy\r\nx-ms-error-code: ServerBusy\r\nretry-after-ms: 5\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n",
		OK201,
	};
	struct block_upload_opts o = { .block_size = 64, .concurrency = 1, .watch_fd = -1 };
	struct fake_server fs;
	struct azure_error err;
	int fd;

	fake_server_start(&fs, r, 2);
	struct azure_client *c = key_client(fs.port);
	struct block_upload *up = block_upload_new(c, "r", &o);
	feed_pipe("same bytes twice", 16, &fd);
	ck_assert_int_eq(block_upload_stage(up, fd, &err), 0);
	close(fd);
	ck_assert_uint_eq(block_upload_stats(up)->retries, 1);
	ck_assert_uint_eq(block_upload_stats(up)->blocks_staged, 1);
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\r\n\r\nsame bytes twice"), 2);
	free(log);
	block_upload_free(up);
	azure_client_free(c);
}
END_TEST

START_TEST(block_engine_fails_on_403)
{
	const char *r[] = {
		"HTTP/1.1 403 No\r\nx-ms-error-code: AuthenticationFailed\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n",
	};
	struct block_upload_opts o = { .block_size = 64, .concurrency = 1, .watch_fd = -1 };
	struct fake_server fs;
	struct azure_error err;
	int fd;

	fake_server_start(&fs, r, 1);
	struct azure_client *c = key_client(fs.port);
	struct block_upload *up = block_upload_new(c, "r", &o);
	feed_pipe("x", 1, &fd);
	ck_assert_int_eq(block_upload_stage(up, fd, &err), -1);
	close(fd);
	ck_assert_str_eq(err.err_class, ERR_CLASS_AUTH);
	ck_assert_ptr_nonnull(strstr(err.message, "Azure refused the credentials"));
	char *log = fake_server_finish(&fs);
	ck_assert_int_eq(count_substr(log, "\n--\n"), 1);
	free(log);
	block_upload_free(up);
	azure_client_free(c);
}
END_TEST

Suite *azure_http_suite(void)
{
	Suite *s = suite_create("azure_http");
	TCase *tc = tcase_create("http");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, put_block_retries_503_with_retry_after);
	tcase_add_test(tc, auth_failure_is_clear_and_not_retried);
	tcase_add_test(tc, sas_goes_in_the_query);
	tcase_add_test(tc, error_reply_parsed_and_redacted);
	tcase_add_test(tc, head_not_found);
	tcase_add_test(tc, create_only_commit);
	tcase_add_test(tc, list_follows_next_marker);
	tcase_add_test(tc, list_garbage_is_an_error);
	tcase_add_test(tc, get_resumes_without_repeating_bytes);
	tcase_add_test(tc, retries_run_out);
	tcase_add_test(tc, delete_outcomes);
	tcase_add_test(tc, transport_failure);
	tcase_add_test(tc, block_engine_stages_and_commits);
	tcase_add_test(tc, block_engine_empty_stream);
	tcase_add_test(tc, block_engine_retries_in_multi);
	tcase_add_test(tc, block_engine_fails_on_403);
	suite_add_tcase(s, tc);
	return s;
}
