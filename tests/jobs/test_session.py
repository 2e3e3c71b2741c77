from chispa import assert_df_equality


def test_session_writes_and_reads_delta(spark, tmp_path):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "k long, v string")
    df.write.format("delta").save(str(tmp_path / "t"))
    back = spark.read.format("delta").load(str(tmp_path / "t"))
    assert_df_equality(back, df, ignore_row_order=True)
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
