package dev.beamllama.io;

import java.util.Locale;

/** The file formats records are read from and written to. */
public enum RecordFormat {
  /** Choose by file extension: {@code .parquet} is Parquet, anything else JSON Lines. */
  AUTO,
  /** One JSON object per line, UTF-8, optionally gzip-compressed ({@code .gz}). */
  JSONL,
  PARQUET;

  /** The format of {@code fileName} under this setting. */
  public RecordFormat resolve(String fileName) {
    if (this != AUTO) {
      return this;
    }
    return fileName.toLowerCase(Locale.ROOT).endsWith(".parquet") ? PARQUET : JSONL;
  }

  public String extension() {
    return this == PARQUET ? ".parquet" : ".jsonl";
  }
}
