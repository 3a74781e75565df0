package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.avro.AvroParquetWriter;
import org.apache.parquet.avro.AvroWriteSupport;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.io.OutputFile;
import org.apache.parquet.io.PositionOutputStream;

/**
 * Prompt records as Parquet files with the schema {@code prompt-record.avsc}: how the Parquet samples
 * are made from the JSONL ones ({@code PromptParquet IN.jsonl OUT.parquet}) and how tests write
 * Parquet inputs.
 */
public final class PromptParquet {
  public static final String AVRO_SCHEMA_RESOURCE = "prompt-record.avsc";

  private PromptParquet() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 2) {
      System.err.println("usage: PromptParquet IN.jsonl OUT.parquet");
      System.exit(2);
    }
    ObjectMapper json = new ObjectMapper();
    List<JsonNode> records = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
      if (!line.isBlank()) {
        records.add(json.readTree(line));
      }
    }
    write(records, Path.of(args[1]));
    System.out.println(args[1] + ": " + records.size() + " records");
  }

  public static Schema schema() {
    try (InputStream in = PromptParquet.class.getResourceAsStream(AVRO_SCHEMA_RESOURCE)) {
      return new Schema.Parser().parse(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Writes JSON prompt records (fields as in the JSONL format) to a Parquet file. */
  public static void write(List<JsonNode> records, Path file) throws IOException {
    write(schema(), rows(records), file, true);
  }

  /**
   * As {@link #write(List, Path)}, with {@code messages} in the three-level list layout of the
   * Parquet format's spec, which pyarrow and Spark write (parquet-avro writes two levels by default).
   */
  public static void writeThreeLevelLists(List<JsonNode> records, Path file) throws IOException {
    write(schema(), rows(records), file, false);
  }

  private static List<GenericRecord> rows(List<JsonNode> records) {
    Schema schema = schema();
    Schema message = schema.getField("messages").schema().getTypes().get(1).getElementType();
    List<GenericRecord> rows = new ArrayList<>();
    for (JsonNode r : records) {
      GenericData.Record row = new GenericData.Record(schema);
      for (Schema.Field field : schema.getFields()) {
        JsonNode value = r.get(field.name());
        if (value == null || value.isNull()) {
          continue;
        }
        row.put(field.name(), switch (field.name()) {
          case "messages" -> {
            List<GenericRecord> turns = new ArrayList<>();
            for (JsonNode m : value) {
              GenericData.Record turn = new GenericData.Record(message);
              turn.put("role", m.get("role").asText());
              turn.put("content", m.get("content").asText());
              turns.add(turn);
            }
            yield turns;
          }
          case "max_new_tokens", "top_k", "n" -> value.asInt();
          case "temperature", "top_p", "repetition_penalty" -> value.asDouble();
          case "seed" -> value.asLong();
          default -> value.asText();
        });
      }
      rows.add(row);
    }
    return rows;
  }

  /** Every row of a Parquet file as a JSON object (tests read the Parquet outputs with it). */
  public static List<JsonNode> read(Path file) throws IOException {
    List<JsonNode> rows = new ArrayList<>();
    try (java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(file)) {
      ParquetRows.read(channel, new ParquetRows.Visitor() {
        @Override
        public void row(long number, JsonNode row) {
          rows.add(row);
        }

        @Override
        public void failure(long number, ErrorKind kind, String message) throws IOException {
          throw new IOException(file + " row " + number + ": " + message);
        }
      });
    }
    return rows;
  }

  /** Writes rows of any schema (tests use it for files with foreign schemas). */
  public static void write(Schema schema, List<GenericRecord> rows, Path file) throws IOException {
    write(schema, rows, file, true);
  }

  private static void write(Schema schema, List<GenericRecord> rows, Path file, boolean twoLevelLists) throws IOException {
    Configuration conf = new Configuration(false);
    conf.setBoolean(AvroWriteSupport.WRITE_OLD_LIST_STRUCTURE, twoLevelLists);
    try (ParquetWriter<GenericRecord> writer = AvroParquetWriter.<GenericRecord>builder(new LocalOutputFile(file))
        .withConf(conf)
        .withSchema(schema)
        .withCompressionCodec(CompressionCodecName.SNAPPY)
        .build()) {
      for (GenericRecord row : rows) {
        writer.write(row);
      }
    }
  }

  /** A local file as Parquet's output, without Hadoop's checksum side files. */
  private record LocalOutputFile(Path path) implements OutputFile {
    @Override
    public PositionOutputStream create(long blockSizeHint) throws IOException {
      return stream(Files.newOutputStream(path));
    }

    @Override
    public PositionOutputStream createOrOverwrite(long blockSizeHint) throws IOException {
      return create(blockSizeHint);
    }

    @Override
    public boolean supportsBlockSize() {
      return false;
    }

    @Override
    public long defaultBlockSize() {
      return 0;
    }

    private static PositionOutputStream stream(OutputStream raw) {
      OutputStream out = new BufferedOutputStream(raw, 1 << 16);
      return new PositionOutputStream() {
        private long position;

        @Override
        public long getPos() {
          return position;
        }

        @Override
        public void write(int b) throws IOException {
          out.write(b);
          position++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
          out.write(b, off, len);
          position += len;
        }

        @Override
        public void flush() throws IOException {
          out.flush();
        }

        @Override
        public void close() throws IOException {
          out.close();
        }
      };
    }
  }
}
