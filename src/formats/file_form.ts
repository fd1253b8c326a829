/**
 * How a set's table files are written: the data format (PostgreSQL's CSV or
 * its binary COPY format) and the compression around it. Each pair has one
 * file name suffix, `.csv`, `.csv.gz`, `.csv.zst`, `.pgcopy`, `.pgcopy.gz`
 * or `.pgcopy.zst`, which is how a file's form is read back from its name.
 *
 * @module
 */

/** `csv`: `COPY … (FORMAT csv, HEADER)`; `binary`: `COPY … (FORMAT binary)`. */
export const DATA_FORMATS = ["csv", "binary"] as const;
/** A table file's data format. */
export type DataFormat = typeof DATA_FORMATS[number];

/** The compressions a table file may have. */
export const COMPRESSIONS = ["none", "gzip", "zstd"] as const;
/** A table file's compression. */
export type Compression = typeof COMPRESSIONS[number];

/** A table file's form. */
export interface FileForm {
  format: DataFormat;
  compression: Compression;
}

const FORMAT_SUFFIX: Record<DataFormat, string> = { csv: ".csv", binary: ".pgcopy" };
const COMPRESSION_SUFFIX: Record<Compression, string> = { none: "", gzip: ".gz", zstd: ".zst" };

/** The name suffix of a form, e.g. `.pgcopy.zst`. */
export function formSuffix({ format, compression }: FileForm): string {
  return FORMAT_SUFFIX[format] + COMPRESSION_SUFFIX[compression];
}

/** Every form, for checks that must cover all names a table file may have. */
export const ALL_FORMS: readonly FileForm[] = DATA_FORMATS.flatMap((format) =>
  COMPRESSIONS.map((compression) => ({ format, compression }))
);

/** The regular expression source matching any form's suffix, capturing format and compression. */
export const FORM_SUFFIX_SOURCE = "\\.(csv|pgcopy)(\\.gz|\\.zst)?";

/** Reads back the two groups of {@linkcode FORM_SUFFIX_SOURCE}. */
export function formOfSuffix(format: string, compression: string | undefined): FileForm {
  return {
    format: format === "pgcopy" ? "binary" : "csv",
    compression: compression === ".gz" ? "gzip" : compression === ".zst" ? "zstd" : "none",
  };
}

/**
 * The compression a request or config asks for, from `compression` and its
 * older alias `gzip`; undefined when neither is given. `names` are how the
 * two are spelled where they came from, and `refuse` throws the caller's
 * error with the sentence of a conflict.
 */
export function chooseCompression(
  gzip: boolean | undefined,
  compression: Compression | undefined,
  names: { gzip: string; compression: string },
  refuse: (sentence: string) => never,
): Compression | undefined {
  if (gzip === undefined) return compression;
  // `gzip: false` only says "not gzip": it leaves zstd free.
  if (compression === undefined) return gzip ? "gzip" : "none";
  if (gzip !== (compression === "gzip")) {
    refuse(
      `${names.gzip} ${gzip} and ${names.compression} "${compression}" disagree: ${names.gzip} true is the older spelling of ${names.compression} "gzip"; give only ${names.compression}.`,
    );
  }
  return compression;
}
