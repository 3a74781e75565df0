package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import org.apache.beam.sdk.io.Compression;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithFailures;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;

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
  /** Counters {@code unread_field:<name>}: records carrying a field nothing reads (a misspelt setting shows here). */
  public static final String UNREAD_FIELD = "unread_field:";

  private static final TupleTag<PromptRecord> RECORDS = new TupleTag<>("records") {};

  private PromptIO() {}

  public static Read read() {
    return new Read(null, RecordFormat.AUTO, DEFAULT_MAX_LINE_BYTES);
  }

  /** The read transform: immutable, configured fluently. */
  public static final class Read extends PTransform<PBegin, WithFailures.Result<PCollection<PromptRecord>, DeadLetter>> {
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
    public WithFailures.Result<PCollection<PromptRecord>, DeadLetter> expand(PBegin input) {
      if (filepattern == null) {
        throw new IllegalArgumentException("PromptIO.read() needs from(filepattern)");
      }
      PCollection<FileIO.ReadableFile> files = input
          .apply("Match", FileIO.match().filepattern(FilePatterns.expandDirectory(filepattern, "*"))
              .withEmptyMatchTreatment(EmptyMatchTreatment.DISALLOW))
          .apply("Open", FileIO.readMatches().withCompression(Compression.AUTO));
      PCollectionTuple parsed = files.apply("Parse",
          ParDo.of(new ReadFileFn(format, maxLineBytes)).withOutputTags(RECORDS, TupleTagList.of(DeadLetter.TAG)));
      return DeadLetter.result(parsed, RECORDS, JsonCoder.of(PromptRecord.class));
    }
  }

  /** Reads one file: every record becomes a prompt record or a dead letter. */
  static final class ReadFileFn extends DoFn<FileIO.ReadableFile, PromptRecord> {
    private final RecordFormat format;
    private final long maxLineBytes;
    private final Counter recordsRead = Metrics.counter(PromptIO.class, RECORDS_READ);

    ReadFileFn(RecordFormat format, long maxLineBytes) {
      this.format = format;
      this.maxLineBytes = maxLineBytes;
    }

    @ProcessElement
    public void process(@Element FileIO.ReadableFile file, MultiOutputReceiver out) {
      RecordFileReader reader = RecordFileReader.of(file, format);
      try {
        reader.read(maxLineBytes, new RecordFileReader.Visitor() {
          @Override
          public void record(SourcePosition at, JsonNode record) {
            recordsRead.inc();
            PromptRecordParser.Parsed parsed = PromptRecordParser.parse(record, at);
            if (parsed.record() != null) {
              PromptRecordParser.unreadFields(record).forEach(name -> Metrics.counter(PromptIO.class, UNREAD_FIELD + name).inc());
              out.get(RECORDS).output(parsed.record());
            } else {
              out.get(DeadLetter.TAG).output(parsed.failure());
            }
          }

          @Override
          public void refused(SourcePosition at, ErrorKind kind, String message) {
            recordsRead.inc();
            out.get(DeadLetter.TAG).output(DeadLetter.of(at, null, kind, message));
          }
        });
      } catch (IOException | RuntimeException e) {
        // Records already emitted stay accounted for; the rest of the file is one dead letter.
        recordsRead.inc();
        out.get(DeadLetter.TAG).output(DeadLetter.of(SourcePosition.file(reader.name()), null, reader.failureKind(),
            "cannot read " + reader.name() + ": " + e));
      }
    }
  }
}
