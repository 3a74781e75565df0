package dev.beamllama.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.Channels;
import java.nio.channels.SeekableByteChannel;
import org.apache.beam.sdk.io.Compression;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Reads prompt records from JSON Lines or Parquet files: {@code PromptIO.read().from("in/*.jsonl")}.
 * Globs and directories are accepted, gzip JSONL is decompressed. Every line or row becomes a
 * {@link PromptRecord} or a {@link DeadLetter} naming the file and line or row: nothing is dropped.
 */
public final class PromptIO {
  /** Lines longer than this are refused by default (8 MiB). */
  public static final long DEFAULT_MAX_LINE_BYTES = 8L << 20;

  /** Records read: every non-blank line and every row, valid or not. */
  public static final String RECORDS_READ = "records_read";

  private static final TupleTag<PromptRecord> RECORDS = new TupleTag<>("records") {};

  private PromptIO() {}

  public static Read read() {
    return new Read(null, RecordFormat.AUTO, DEFAULT_MAX_LINE_BYTES);
  }

  /** The read transform: immutable, configured fluently. */
  public static final class Read extends PTransform<PBegin, WithDeadLetters<PromptRecord>> {
    private final String filepattern;
    private final RecordFormat format;
    private final long maxLineBytes;

    private Read(String filepattern, RecordFormat format, long maxLineBytes) {
      this.filepattern = filepattern;
      this.format = format;
      this.maxLineBytes = maxLineBytes;
    }

    /** A file, a glob, or a local directory (all files directly in it). */
    public Read from(String filepattern) {
      return new Read(filepattern, format, maxLineBytes);
    }

    public Read withFormat(RecordFormat format) {
      return new Read(filepattern, format, maxLineBytes);
    }

    public Read withMaxLineBytes(long maxLineBytes) {
      if (maxLineBytes < 1) {
        throw new IllegalArgumentException("maxLineBytes must be positive");
      }
      return new Read(filepattern, format, maxLineBytes);
    }

    @Override
    public WithDeadLetters<PromptRecord> expand(PBegin input) {
      if (filepattern == null) {
        throw new IllegalArgumentException("PromptIO.read() needs from(filepattern)");
      }
      PCollection<FileIO.ReadableFile> files = input
          .apply("Match", FileIO.match().filepattern(FilePatterns.expandDirectory(filepattern, "*"))
              .withEmptyMatchTreatment(EmptyMatchTreatment.DISALLOW))
          .apply("Open", FileIO.readMatches().withCompression(Compression.AUTO));
      return WithDeadLetters.apply(files, "Parse", new ReadFileFn(format, maxLineBytes), RECORDS, JsonCoder.of(PromptRecord.class));
    }
  }

  /** Reads one file: JSONL line by line, Parquet row by row. */
  static final class ReadFileFn extends DoFn<FileIO.ReadableFile, PromptRecord> {
    private static final ObjectMapper JSON = new ObjectMapper()
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final RecordFormat format;
    private final long maxLineBytes;
    private final Counter recordsRead = Metrics.counter(PromptIO.class, RECORDS_READ);

    ReadFileFn(RecordFormat format, long maxLineBytes) {
      this.format = format;
      this.maxLineBytes = maxLineBytes;
    }

    @ProcessElement
    public void process(@Element FileIO.ReadableFile file, MultiOutputReceiver out) {
      String name = file.getMetadata().resourceId().toString();
      try {
        if (format.resolve(name) == RecordFormat.PARQUET) {
          readParquet(file, name, out);
        } else {
          readJsonLines(file, name, out);
        }
      } catch (IOException | RuntimeException e) {
        // Records already emitted stay accounted for; the rest of the file is one dead letter.
        recordsRead.inc();
        ErrorKind kind = format.resolve(name) == RecordFormat.PARQUET ? ErrorKind.CORRUPT_FILE : ErrorKind.UNREADABLE_FILE;
        out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(SourcePosition.file(name), null, kind,
            "cannot read " + name + ": " + e));
      }
    }

    private void readJsonLines(FileIO.ReadableFile file, String name, MultiOutputReceiver out) throws IOException {
      try (InputStream in = Channels.newInputStream(file.open())) {
        JsonLines.read(in, maxLineBytes, new JsonLines.Visitor() {
          @Override
          public void line(long number, String text) {
            recordsRead.inc();
            SourcePosition at = SourcePosition.line(name, number);
            JsonNode node;
            try {
              node = JSON.readTree(text);
            } catch (JsonProcessingException e) {
              out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(at, null, ErrorKind.MALFORMED_JSON,
                  "not a JSON object: " + e.getOriginalMessage()));
              return;
            }
            emit(PromptRecordParser.parse(node, at), out);
          }

          @Override
          public void failure(long number, ErrorKind kind, String message) {
            recordsRead.inc();
            out.get(WithDeadLetters.DEAD_LETTERS).output(DeadLetter.of(SourcePosition.line(name, number), null, kind, message));
          }
        });
      }
    }

    private void readParquet(FileIO.ReadableFile file, String name, MultiOutputReceiver out) throws IOException {
      try (SeekableByteChannel channel = file.openSeekable()) {
        ParquetRows.read(channel, (number, row) -> {
          recordsRead.inc();
          emit(PromptRecordParser.parse(row, SourcePosition.row(name, number)), out);
        });
      }
    }

    private static void emit(PromptRecordParser.Parsed parsed, MultiOutputReceiver out) {
      if (parsed.record() != null) {
        out.get(RECORDS).output(parsed.record());
      } else {
        out.get(WithDeadLetters.DEAD_LETTERS).output(parsed.failure());
      }
    }
  }
}
