package dev.beamllama.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SeekableByteChannel;
import java.util.function.LongConsumer;
import org.apache.beam.sdk.io.Compression;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.ResourceId;

/**
 * The one reader of record files: opens a matched file, tells JSON Lines from Parquet
 * ({@link RecordFormat}) and yields its records as JSON values with their 1-based line or row, so
 * prompts (PromptIO), completed samples (ResumeIO) and the launcher's counts and report
 * (RecordFiles) read files alike. Streams: one record in memory at a time.
 */
abstract class RecordFileReader {
  /** Where the records of a file go. */
  interface Visitor {
    /** A JSONL line that parsed as JSON (an object or not), or a Parquet row as an object. */
    void record(SourcePosition at, JsonNode record) throws IOException;

    /** A line or row that is no record: over the size limit, not UTF-8, or not JSON. */
    void refused(SourcePosition at, ErrorKind kind, String message) throws IOException;
  }

  /** One object per line, each key once: a key given twice would otherwise keep its last value silently. */
  private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  private final String name;
  private final Compression compression;
  private final RecordFormat setting;
  private RecordFormat format;

  private RecordFileReader(String name, Compression compression, RecordFormat setting) {
    this.name = name;
    this.compression = compression;
    this.setting = setting;
  }

  /** A file a pipeline matched ({@code FileIO.readMatches()}), read as {@code setting} says. */
  static RecordFileReader of(FileIO.ReadableFile file, RecordFormat setting) {
    return new RecordFileReader(file.getMetadata().resourceId().toString(), file.getCompression(), setting) {
      @Override
      ReadableByteChannel open() throws IOException {
        return file.open();
      }

      @Override
      SeekableByteChannel openSeekable() throws IOException {
        return file.openSeekable();
      }
    };
  }

  /** A file matched outside a pipeline, compressed as its name says, read as {@code setting} says. */
  static RecordFileReader of(ResourceId file, RecordFormat setting) {
    Compression compression = Compression.detect(file.getFilename());
    return new RecordFileReader(file.toString(), compression, setting) {
      @Override
      ReadableByteChannel open() throws IOException {
        return compression.readDecompressed(FileSystems.open(file));
      }

      @Override
      SeekableByteChannel openSeekable() throws IOException {
        if (compression != Compression.UNCOMPRESSED) {
          throw new IOException(file + " is compressed (" + compression + "): a Parquet file must be read uncompressed");
        }
        return (SeekableByteChannel) FileSystems.open(file);
      }
    };
  }

  /** The file's contents, decompressed. */
  abstract ReadableByteChannel open() throws IOException;

  /** The file's bytes, for Parquet, which reads its footer first. */
  abstract SeekableByteChannel openSeekable() throws IOException;

  String name() {
    return name;
  }

  /** The format the file is read as: decided once, by a look at its first bytes when its name does not tell. */
  RecordFormat format() throws IOException {
    if (format == null) {
      format = setting.of(name, compression, this::head);
    }
    return format;
  }

  /**
   * Why the file could not be read past some point: a Parquet file that does not decode is
   * corrupt; anything else, or a file that failed before its format was known, is unreadable.
   */
  ErrorKind failureKind() {
    return format == RecordFormat.PARQUET ? ErrorKind.CORRUPT_FILE : ErrorKind.UNREADABLE_FILE;
  }

  /**
   * Every record of the file, in order, and every line that is none; JSONL lines longer than
   * {@code maxLineBytes} are refused without being held. Throws when the file cannot be read (past
   * some point): what was yielded before stays yielded.
   */
  void read(long maxLineBytes, Visitor visitor) throws IOException {
    if (format() == RecordFormat.PARQUET) {
      try (SeekableByteChannel channel = openSeekable()) {
        ParquetRows.read(channel, new ParquetRows.Visitor() {
          @Override
          public void row(long number, JsonNode row) throws IOException {
            visitor.record(SourcePosition.row(name, number), row);
          }

          @Override
          public void failure(long number, ErrorKind kind, String message) throws IOException {
            visitor.refused(SourcePosition.row(name, number), kind, message);
          }
        });
      }
      return;
    }
    try (InputStream in = Channels.newInputStream(open())) {
      JsonLines.read(in, maxLineBytes, new JsonLines.Visitor() {
        @Override
        public void line(long number, String text) throws IOException {
          SourcePosition at = SourcePosition.line(name, number);
          JsonNode record;
          try {
            record = JSON.readTree(text);
          } catch (JsonProcessingException e) {
            visitor.refused(at, ErrorKind.MALFORMED_JSON, "not a JSON object: " + e.getOriginalMessage());
            return;
          }
          visitor.record(at, record);
        }

        @Override
        public void failure(long number, ErrorKind kind, String message) throws IOException {
          visitor.refused(SourcePosition.line(name, number), kind, message);
        }
      });
    }
  }

  /**
   * Counts what {@link #read} would yield, records and refused lines alike, without decoding them:
   * JSONL lines one by one, a Parquet file's rows at once from its footer. Throws as read does.
   */
  void count(long maxLineBytes, LongConsumer counted) throws IOException {
    if (format() == RecordFormat.PARQUET) {
      try (SeekableByteChannel channel = openSeekable()) {
        counted.accept(ParquetRows.rowCount(channel));
      }
      return;
    }
    try (InputStream in = Channels.newInputStream(open())) {
      JsonLines.read(in, maxLineBytes, new JsonLines.Visitor() {
        @Override
        public void line(long number, String text) {
          counted.accept(1);
        }

        @Override
        public void failure(long number, ErrorKind kind, String message) {
          counted.accept(1);
        }
      });
    }
  }

  private byte[] head(int bytes) throws IOException {
    try (InputStream in = Channels.newInputStream(open())) {
      return in.readNBytes(bytes);
    }
  }
}
