/* metadata_json.h - a collection's mongodump metadata.json, as written by
 * export-collection --metadata: {"options"?, "indexes": [...], "uuid",
 * "collectionName", "type"} in canonical Extended JSON.
 *
 * Shared by verify (does it parse?) and import-collection (which options
 * to create the collection with, which indexes to build), without pulling
 * in storage or MongoDB client code.
 */
#ifndef MAB_METADATA_JSON_H
#define MAB_METADATA_JSON_H

#include <bson/bson.h>
#include <stddef.h>

/* A metadata.json holds indexes, validators and options: a few KB.  A
 * validator may be large, but options and indexes live in one catalog
 * document that mongod caps at 16 MiB of BSON, and no real one comes near
 * it; more than this, compressed or inflated, is not one of ours.  It is
 * also the most a restore or verify holds for a metadata blob, one
 * collection at a time however many manifest entries name the blob: a few
 * KB of gzip can inflate to gigabytes. */
#define METADATA_JSON_MAX (16u << 20)

/* Parses and checks: a JSON object whose "indexes" is an array of objects
 * each with a "key" object and a "name" string; "options", when present,
 * an object.  The document (bson_destroy it) with *n_indexes set, or NULL
 * with a reason in err. */
bson_t *metadata_parse(const char *json, size_t len, int *n_indexes, char *err,
		       size_t errlen);
/* metadata_parse, keeping only the count; -1 with a reason in err. */
int metadata_check(const char *json, size_t len, char *err, size_t errlen);

/* The indexes of a parsed metadata document other than _id_ (the ones a
 * restore builds). */
int metadata_buildable(const bson_t *meta);

#endif
