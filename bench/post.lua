-- wrk script: the same POST for the runtime and the baseline.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"items":[{"sku":"ABC-001","qty":2,"price":9.99},{"sku":"XYZ-042","qty":1,"price":5},{"sku":"LMN-777","qty":3,"price":1.25}]}'
