package dev.beamllama.io;

import java.io.IOException;
import java.util.Arrays;
import java.util.Locale;
import org.apache.beam.sdk.io.Compression;

/** The file formats records are read from and written to. */
public enum RecordFormat {
  /**
   * Tell by the file: Parquet when its name ends in {@code .parquet} or, uncompressed, it starts with
   * Parquet's magic bytes; JSON Lines otherwise.
   */
  AUTO,
  /** One JSON object per line, UTF-8, optionally gzip-compressed ({@code .gz}). */
  JSONL,
  PARQUET;

  private static final byte[] PARQUET_MAGIC = {'P', 'A', 'R', '1'};

  /** The first bytes of a file, read only when its name does not tell its format. */
  @FunctionalInterface
  interface Head {
    byte[] read(int bytes) throws IOException;
  }

  /**
   * The format a file is read as under this setting. The name is asked first, so that a damaged
   * {@code .parquet} file is reported as a corrupt Parquet file rather than read as lines; the
   * content next, since the temporary shards a died job leaves ({@code --resumeFrom}) have no
   * extension.
   */
  RecordFormat of(String fileName, Compression compression, Head head) throws IOException {
    if (this != AUTO) {
      return this;
    }
    if (fileName.toLowerCase(Locale.ROOT).endsWith(PARQUET.extension())) {
      return PARQUET;
    }
    boolean magic = compression == Compression.UNCOMPRESSED && Arrays.equals(head.read(PARQUET_MAGIC.length), PARQUET_MAGIC);
    return magic ? PARQUET : JSONL;
  }

  public String extension() {
    return this == PARQUET ? ".parquet" : ".jsonl";
  }
}
