package dev.beamllama.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.io.Compression;
import org.junit.jupiter.api.Test;

/** The one rule that tells a record file's format, as every reader of record files applies it. */
class RecordFormatTest {
  private static final RecordFormat.Head PARQUET_HEAD = bytes -> "PAR1".getBytes(StandardCharsets.US_ASCII);
  private static final RecordFormat.Head JSON_HEAD = bytes -> "{\"id".getBytes(StandardCharsets.US_ASCII);
  private static final RecordFormat.Head NOT_READ = bytes -> {
    throw new AssertionError("the file's bytes are read only when its name does not tell");
  };

  @Test
  void aParquetNameDecidesWithoutReadingTheFile() throws Exception {
    assertEquals(RecordFormat.PARQUET, RecordFormat.AUTO.of("in/a.parquet", Compression.UNCOMPRESSED, NOT_READ));
    assertEquals(RecordFormat.PARQUET, RecordFormat.AUTO.of("in/A.PARQUET", Compression.UNCOMPRESSED, NOT_READ));
  }

  @Test
  void otherwiseParquetsMagicBytesDecide() throws Exception {
    assertEquals(RecordFormat.PARQUET, RecordFormat.AUTO.of("out/.temp-beam-1/2c6e9d1a", Compression.UNCOMPRESSED, PARQUET_HEAD));
    assertEquals(RecordFormat.JSONL, RecordFormat.AUTO.of("out/.temp-beam-1/2c6e9d1a", Compression.UNCOMPRESSED, JSON_HEAD));
    assertEquals(RecordFormat.JSONL, RecordFormat.AUTO.of("in/a.jsonl", Compression.UNCOMPRESSED, bytes -> new byte[0]), "an empty file");
  }

  @Test
  void aCompressedFileIsJsonLines() throws Exception {
    assertEquals(RecordFormat.JSONL, RecordFormat.AUTO.of("in/a.jsonl.gz", Compression.GZIP, NOT_READ));
  }

  @Test
  void anExplicitFormatIsNeverSecondGuessed() throws Exception {
    assertEquals(RecordFormat.JSONL, RecordFormat.JSONL.of("in/a.parquet", Compression.UNCOMPRESSED, NOT_READ));
    assertEquals(RecordFormat.PARQUET, RecordFormat.PARQUET.of("in/a.jsonl", Compression.UNCOMPRESSED, NOT_READ));
  }
}
