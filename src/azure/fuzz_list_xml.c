/* fuzz_list_xml.c - azure_parse_blob_list() on arbitrary List Blobs pages.
 *
 * The callback checks each entry and, when the input's last byte says so,
 * stops the listing half way.  Checks: entries have a name; a blob has its
 * strings; metadata arrays match n_meta; a stop value comes back unchanged;
 * an error leaves a message and no marker.
 */
#include "config.h"

#include <stdbool.h>

#include "azure_xml.h"
#include "fuzz.h"

struct walk {
	size_t seen;
	size_t stop_after;	/* 0: never stop */
};

static int on_item(void *ctx, const struct azure_blob_item *item)
{
	struct walk *w = ctx;

	FUZZ_CHECK(item->name != NULL && item->name[0] != '\0', "entry without a name");
	if (!item->is_prefix)
		FUZZ_CHECK(item->content_md5 != NULL && item->content_type != NULL &&
			   item->etag != NULL, "blob %s lacks a property string", item->name);
	FUZZ_CHECK(item->n_meta == 0 || (item->meta_names != NULL && item->meta_values != NULL),
		   "metadata arrays missing");
	for (size_t i = 0; i < item->n_meta; i++) {
		FUZZ_CHECK(item->meta_names[i] != NULL && item->meta_values[i] != NULL,
			   "metadata %zu is NULL", i);
		FUZZ_CHECK(azure_blob_item_meta(item, item->meta_names[i]) != NULL,
			   "metadata %s not found by name", item->meta_names[i]);
	}
	w->seen++;
	return w->stop_after != 0 && w->seen == w->stop_after ? 42 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = { 0, 0 };
	char err[256];
	char *marker = (char *)"unset";
	int rc;

	if (size > 256 * 1024)
		return 0;
	if (size > 0 && data[size - 1] < 4)
		w.stop_after = data[size - 1];
	err[0] = '\0';
	rc = azure_parse_blob_list((const char *)data, size, on_item, &w, &marker, err,
				   sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1 || rc == 42, "rc %d", rc);
	if (rc == 42)
		FUZZ_CHECK(w.seen == w.stop_after, "stopped after %zu, not %zu", w.seen,
			   w.stop_after);
	if (rc == -1)
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
	if (rc != 0)
		FUZZ_CHECK(marker == NULL, "a marker after a failure");
	if (marker != NULL)
		FUZZ_CHECK(marker[0] != '\0', "an empty marker");
	free(marker);
	return 0;
}
