/* download_blob.c - the download-blob helper: one blob to stdout.
 *
 *   download-blob [-c CONF] [--container NAME] [--offset N] BLOB-NAME
 *
 * Streams with bounded memory and no temporary files.  A dropped
 * connection resumes with a Range request from the first byte not yet
 * written, so no byte is written twice.  A whole-blob download is checked
 * against the blob's Content-MD5 when it has one.  Exit: 0 done, 1 failed,
 * 2 usage/config, 3 the reader of stdout went away (EPIPE).
 *
 * A name with an empty, "." or ".." segment is refused: the restore that
 * runs us takes names from a manifest, and a server that resolved such
 * segments itself would read another folder or container with our
 * credentials (the request goes out as named: CURLOPT_PATH_AS_IS).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blob_tool.h"
#include "child_status.h"
#include "log.h"
#include "no_core.h"
#include "xio.h"

struct sink {
	EVP_MD_CTX *md5;
	uint64_t written;
};

static int write_out(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;

	if (xwrite_all(STDOUT_FILENO, data, len) != 0)
		return -1;
	if (s->md5 != NULL && EVP_DigestUpdate(s->md5, data, len) != 1) {
		errno = EIO;
		return -1;
	}
	s->written += len;
	return 0;
}

/* No empty, "." or ".." segment between the slashes. */
static bool plain_segments(const char *name)
{
	for (const char *seg = name;;) {
		size_t n = strcspn(seg, "/");

		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (seg[n] == '\0')
			return true;
		seg += n + 1;
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: download-blob [-c CONF] [--container NAME] [--offset N] BLOB-NAME\n"
		     "Writes the blob's bytes to stdout, from byte N when --offset is given.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "container", required_argument, NULL, 'C' },
		{ "offset", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct mab_config cfg;
	struct azure_client *client = NULL;
	struct azure_blob_item props = { 0 };
	struct azure_error err;
	struct sink sink = { 0 };
	const char *config_path = MAB_DEFAULT_CONFIG, *container = NULL, *blob;
	bool config_given = false, have_cfg = false;
	uint64_t offset = 0;
	char why[512];
	int opt, rc = CHILD_EXIT_USAGE;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	memset(&cfg, 0, sizeof(cfg));
	log_open("download-blob", LOG_TARGET_STDERR, LOG_INFO);
	signal(SIGPIPE, SIG_IGN);

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			config_given = true;
			break;
		case 'C':
			container = optarg;
			break;
		case 'o':
			if (blob_tool_parse_u64(optarg, &offset) != 0) {
				msg_error("--offset '%s' is not a byte count", optarg);
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rc = CHILD_EXIT_OK;
			goto out;
		case 'V':
			printf("download-blob (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			rc = CHILD_EXIT_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		goto out;
	}
	blob = argv[optind];
	if (!azure_valid_blob_name(blob)) {
		msg_error("blob name '%s' is not valid", blob);
		goto out;
	}
	if (!plain_segments(blob)) {
		msg_error("blob name '%s' has an empty, '.' or '..' segment; refused", blob);
		goto out;
	}
	have_cfg = true;
	if (blob_tool_config("download-blob", config_path, config_given, &cfg, why,
			     sizeof(why)) != 0)
		goto out;
	client = blob_tool_client(&cfg, container, why, sizeof(why));
	if (client == NULL)
		goto out;

	rc = CHILD_EXIT_FAILED;
	if (offset == 0) {
		sink.md5 = EVP_MD_CTX_new();
		if (sink.md5 == NULL || EVP_DigestInit_ex(sink.md5, EVP_md5(), NULL) != 1) {
			msg_error("cannot set up MD5");
			goto out;
		}
	}
	if (azure_get_blob(client, blob, offset, write_out, &sink, &props, &err) != 0) {
		if (err.sys_errno == EPIPE) {
			msg_notice("%s: the reader of stdout went away after %" PRIu64 " bytes",
				   blob, sink.written);
			rc = CHILD_EXIT_PEER_GONE;
		} else {
			msg_error("%s", err.message);
		}
		goto out;
	}
	if (sink.md5 != NULL && props.content_md5 != NULL && *props.content_md5) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int len = 0;
		char b64[AZURE_MD5_B64_SIZE];
		if (EVP_DigestFinal_ex(sink.md5, md, &len) != 1 || len != 16) {
			msg_error("cannot finish MD5");
			goto out;
		}
		azure_b64_encode(md, len, b64);
		if (strcmp(b64, props.content_md5) != 0) {
			msg_error("%s/%s: downloaded bytes have MD5 %s, the blob says %s: "
				  "corrupt transfer or blob", client->container, blob, b64,
				  props.content_md5);
			goto out;
		}
	}
	msg_info("downloaded %s/%s: %" PRIu64 " bytes", client->container, blob, sink.written);
	rc = CHILD_EXIT_OK;
out:
	EVP_MD_CTX_free(sink.md5);
	azure_blob_item_free(&props);
	azure_client_free(client);
	if (have_cfg)
		config_free(&cfg);
	return rc;
}
