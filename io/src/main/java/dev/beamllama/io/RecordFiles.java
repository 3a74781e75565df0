package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SeekableByteChannel;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.function.Consumer;
import org.apache.beam.sdk.io.Compression;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.io.fs.MatchResult;
import org.apache.beam.sdk.io.fs.ResourceId;

/**
 * Record files read outside a pipeline, by the job's launcher: counting the input records before the
 * job reads them (for a progress total), and reading back the shards a finished job wrote (for its
 * report). Both go through Beam's file systems, globs and compression as the pipeline's readers do.
 */
public final class RecordFiles {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final byte[] PARQUET_MAGIC = {'P', 'A', 'R', '1'};

  private RecordFiles() {}

  /**
   * The number of records {@link PromptIO#read()} will count for these local files (its
   * {@code records_read}), or empty for a remote pattern, where a second pass over the input is not
   * cheap, or a pattern that matches nothing. Mirrors the reader: every non-blank line and every
   * line it refuses, every Parquet row (from the footer, nothing decoded), and a file that cannot
   * be read past some point counts what was read before it plus one for the rest.
   */
  public static OptionalLong countPromptRecords(String filepattern, RecordFormat format, long maxLineBytes) {
    String pattern = FilePatterns.expandDirectory(filepattern, "*");
    if (pattern.contains("://") && !pattern.toLowerCase(Locale.ROOT).startsWith("file://")) {
      return OptionalLong.empty();
    }
    List<MatchResult.Metadata> files;
    try {
      files = FileSystems.match(pattern, EmptyMatchTreatment.DISALLOW).metadata();
    } catch (IOException e) {
      return OptionalLong.empty();
    }
    long total = 0;
    for (MatchResult.Metadata file : files) {
      total += countRecords(file.resourceId(), format, maxLineBytes);
    }
    return OptionalLong.of(total);
  }

  private static long countRecords(ResourceId file, RecordFormat format, long maxLineBytes) {
    String name = file.toString();
    Compression compression = Compression.detect(file.getFilename());
    long[] count = {0};
    try {
      if (format.resolve(name) == RecordFormat.PARQUET) {
        if (compression != Compression.UNCOMPRESSED) {
          return 1; // the reader cannot seek in it: one dead letter for the file
        }
        try (SeekableByteChannel channel = (SeekableByteChannel) FileSystems.open(file)) {
          return ParquetRows.rowCount(channel);
        }
      }
      try (InputStream in = Channels.newInputStream(compression.readDecompressed(FileSystems.open(file)))) {
        JsonLines.read(in, maxLineBytes, new JsonLines.Visitor() {
          @Override
          public void line(long number, String text) {
            count[0]++;
          }

          @Override
          public void failure(long number, ErrorKind kind, String message) {
            count[0]++;
          }
        });
      }
      return count[0];
    } catch (IOException | RuntimeException e) {
      return count[0] + 1;
    }
  }

  /**
   * Every record of the files {@code filepattern} matches (none is fine), JSONL or Parquet told
   * apart by content, in no particular order; returns how many lines did not parse as JSON.
   * Streams: one record in memory at a time.
   */
  public static long readRows(String filepattern, Consumer<JsonNode> rows) throws IOException {
    long unreadable = 0;
    for (MatchResult.Metadata file : FileSystems.match(filepattern, EmptyMatchTreatment.ALLOW).metadata()) {
      unreadable += readFile(file.resourceId(), rows);
    }
    return unreadable;
  }

  private static long readFile(ResourceId file, Consumer<JsonNode> rows) throws IOException {
    Compression compression = Compression.detect(file.getFilename());
    if (compression == Compression.UNCOMPRESSED && isParquet(file)) {
      try (SeekableByteChannel channel = (SeekableByteChannel) FileSystems.open(file)) {
        ParquetRows.read(channel, (number, row) -> rows.accept(row));
      }
      return 0;
    }
    long[] unreadable = {0};
    try (InputStream in = Channels.newInputStream(compression.readDecompressed(FileSystems.open(file)))) {
      JsonLines.read(in, Long.MAX_VALUE, new JsonLines.Visitor() {
        @Override
        public void line(long number, String text) {
          try {
            rows.accept(JSON.readTree(text));
          } catch (IOException e) {
            unreadable[0]++;
          }
        }

        @Override
        public void failure(long number, ErrorKind kind, String message) {
          unreadable[0]++;
        }
      });
    }
    return unreadable[0];
  }

  private static boolean isParquet(ResourceId file) throws IOException {
    try (ReadableByteChannel channel = FileSystems.open(file);
        InputStream in = new BufferedInputStream(Channels.newInputStream(channel))) {
      return Arrays.equals(in.readNBytes(4), PARQUET_MAGIC);
    }
  }
}
